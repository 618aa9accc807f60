use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::kill;
use nix::unistd::Pid;
use sluice_testkit::{AuthMethod, PgCluster};

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn starts_with_logical_wal_and_utc() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("fresh database");
    let rows = db
        .query(
            "SELECT current_setting('wal_level'), current_setting('TimeZone'), \
             current_setting('wal_sender_timeout'), current_setting('server_version_num')::int",
            &[],
        )
        .await
        .expect("query settings");
    assert_eq!(rows[0].get::<_, String>(0), "logical");
    assert_eq!(rows[0].get::<_, String>(1), "UTC");
    assert_eq!(rows[0].get::<_, String>(2), "10s");
    assert!(rows[0].get::<_, i32>(3) / 10000 == 15);
}

#[tokio::test]
async fn fresh_databases_are_distinct() {
    let cluster = PgCluster::shared();
    let a = cluster.fresh_database().await.expect("first database");
    let b = cluster.fresh_database().await.expect("second database");
    assert_ne!(a.name(), b.name());
    a.execute("CREATE TABLE only_in_a (id int)")
        .await
        .expect("create in a");
    let rows = b
        .query(
            "SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'",
            &[],
        )
        .await
        .expect("look in b");
    assert_eq!(rows[0].get::<_, i64>(0), 0);
    let rows = a
        .query("SELECT current_database()", &[])
        .await
        .expect("current database");
    assert_eq!(rows[0].get::<_, String>(0), a.name());
    assert!(a.url().ends_with(&format!("/{}", a.name())));
}

#[tokio::test]
async fn drop_stops_the_server_and_removes_the_directory() {
    let cluster = PgCluster::start().expect("start");
    let root = cluster.root_dir().to_path_buf();
    let pid = cluster.pid().expect("running server has a pid");
    assert!(root.join("data/postmaster.pid").is_file());
    assert!(alive(pid));
    let db = cluster.fresh_database().await.expect("database");
    db.execute("SELECT 1").await.expect("server answers");
    drop(cluster);
    assert!(!root.exists(), "{} still exists", root.display());
    assert!(!alive(pid), "postmaster {pid} still runs");
    assert!(
        db.client().await.is_err(),
        "server still accepts connections"
    );
}

#[tokio::test]
async fn users_with_passwords_and_tls() {
    let cluster = PgCluster::builder()
        .user("alice", "s3cret'\"", AuthMethod::ScramSha256)
        .user("bob", "hunter2", AuthMethod::Md5)
        .tls()
        .conf("work_mem = '8MB'")
        .start()
        .expect("start");
    let ca = cluster.ca_cert_path().expect("tls cluster has a CA");
    assert!(
        std::fs::read_to_string(ca)
            .expect("read CA")
            .contains("BEGIN CERTIFICATE")
    );
    let db = cluster.fresh_database().await.expect("database");
    let rows = db
        .query(
            "SELECT rolname, left(rolpassword, 6) FROM pg_authid \
             WHERE rolname IN ('alice', 'bob') ORDER BY 1",
            &[],
        )
        .await
        .expect("roles");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, String>(1), "SCRAM-");
    assert!(rows[1].get::<_, String>(1).starts_with("md5"));
    let rows = db
        .query(
            "SELECT current_setting('ssl'), current_setting('work_mem')",
            &[],
        )
        .await
        .expect("settings");
    assert_eq!(rows[0].get::<_, String>(0), "on");
    assert_eq!(rows[0].get::<_, String>(1), "8MB");
    // Without a password, alice is refused: her pg_hba line comes before the trust lines.
    let mut config: tokio_postgres::Config = db.url_for("alice", "").parse().expect("url");
    config.password(Vec::<u8>::new());
    assert!(config.connect(tokio_postgres::NoTls).await.is_err());
    let ok: tokio_postgres::Config = db.url_for("alice", "s3cret'\"").parse().expect("url");
    let (client, conn) = ok
        .connect(tokio_postgres::NoTls)
        .await
        .expect("alice connects");
    tokio::spawn(conn);
    let rows = client
        .query("SELECT current_user::text", &[])
        .await
        .expect("whoami");
    assert_eq!(rows[0].get::<_, String>(0), "alice");
}

/// Run by `watchdog_cleans_up_after_an_abort` in a child process: starts a cluster, prints
/// its directory and PID, and aborts without unwinding.
#[test]
#[ignore = "helper: run by watchdog_cleans_up_after_an_abort"]
fn abort_helper() {
    let cluster = PgCluster::start().expect("start");
    println!(
        "CLUSTER {} {}",
        cluster.pid().expect("pid"),
        cluster.root_dir().display()
    );
    std::process::abort();
}

#[test]
fn watchdog_cleans_up_after_an_abort() {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "cluster::abort_helper",
            "--nocapture",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn helper");
    let stdout = child.stdout.take().expect("piped stdout");
    let line = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("CLUSTER "))
        .expect("helper printed its cluster");
    let _ = child.wait();
    let mut parts = line.splitn(3, ' ').skip(1);
    let pid: i32 = parts.next().expect("pid").parse().expect("numeric pid");
    let root = PathBuf::from(parts.next().expect("dir"));
    wait_until("the aborted test's server stops", || !alive(pid));
    wait_until("the aborted test's directory is removed", || !root.exists());
}

#[test]
fn stale_cluster_directories_are_swept() {
    // A directory left by a test process that no longer exists (PID 0x7ffffffe is above
    // pid_max on Linux, so it never runs).
    let stale = std::env::temp_dir().join("sluice-testkit-cluster-2147483646-0-stale");
    std::fs::create_dir_all(stale.join("data")).expect("create stale dir");
    std::fs::write(stale.join("data/postmaster.pid"), "2147483646\n").expect("pid file");
    let cluster = PgCluster::start().expect("start");
    assert!(!stale.exists(), "stale directory survived");
    drop(cluster);
}
