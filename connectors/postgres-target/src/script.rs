//! Running SQL that ships with Sluice (the KPI views of `sluice views install`) against the
//! target: every statement in one transaction, all or nothing.

use crate::client::Client;
use crate::config::PostgresTargetConfig;
use crate::error::Result;

/// Runs `statements` in order in one transaction; each is `(what, sql)`, and `what` names the
/// statement in an error (`installing view "low_stock"`).
pub async fn execute_script<'a>(
    config: &PostgresTargetConfig,
    statements: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<()> {
    let client = Client::connect(&config.connection()?).await?;
    client.execute("BEGIN", "starting a transaction").await?;
    for (what, sql) in statements {
        if let Err(e) = client.execute(sql, what).await {
            let _ = client.execute("ROLLBACK", "rolling back").await;
            return Err(e);
        }
    }
    client.execute("COMMIT", "committing").await
}
