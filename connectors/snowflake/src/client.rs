//! One Snowflake session over the driver REST protocol (the one Snowflake's JDBC, Python and Go
//! connectors speak; not the SQL API).
//!
//! - `POST /session/v1/login-request` opens the session and returns a session `token` (and,
//!   from real Snowflake, a `masterToken` that renews it: `POST /session/token-request`).
//! - `POST /queries/v1/query-request?requestId=<uuid>` runs one statement, with the header
//!   `Authorization: Snowflake Token="<token>"`. A statement still running after Snowflake's
//!   wait answers code 333333/333334 and a `getResultUrl`, which is polled until done.
//! - Every answer is JSON `{"data", "code", "message", "success"}`.
//!
//! Retries: a request that failed on the network, timed out, or got HTTP 429/502/503/504 or a
//! 5xx without a JSON body is sent again with jittered exponential backoff, within
//! [`ClientOptions::max_retries`] and [`ClientOptions::retry_budget`]. A statement is retried
//! with the same `requestId` plus `retry=true&retryCount=n`, so Snowflake runs it at most once.
//! A JSON answer with `success: false` is final, whatever its HTTP status.
//!
//! Sessions: an expired session token is renewed with the master token, which keeps the session
//! (and its open transaction); when that is impossible the client logs in again and
//! [`Client::generation`] increases, because an open transaction went with the old session.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, RequestBuilder};
use ring::rand::{SecureRandom as _, SystemRandom};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::auth::{PrivateKey, account_name};
use crate::error::{Error, LOGIN_AGAIN, MASTER_EXPIRED, Result, SESSION_EXPIRED, ServerError};
use crate::rowset::{self, Row, RowType};

/// An HTTP request may take this long: Snowflake answers "still running" after about 45 s, so a
/// request that outlives this is lost.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Opening a TCP and TLS connection to Snowflake takes well under a second when it works.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries of one request, spaced 0.25 s, 0.5 s, … 8 s (with jitter): about 30 s in all.
pub const DEFAULT_MAX_RETRIES: u32 = 7;
/// No request is retried beyond this, whatever `max_retries` says.
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(60);
/// The first backoff; each retry doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Polling a running statement: start fast for short statements, settle at 2 s for long ones.
const FIRST_POLL: Duration = Duration::from_millis(100);
const MAX_POLL: Duration = Duration::from_secs(2);
/// Codes of "the statement is still running".
const IN_PROGRESS: [&str; 2] = ["333333", "333334"];
/// How much of a statement's text reaches the debug log.
const LOGGED_STATEMENT_CHARS: usize = 80;

/// How the user authenticates.
#[derive(Debug)]
pub enum Auth {
    Password(SecretString),
    /// Key-pair authentication (`AUTHENTICATOR = SNOWFLAKE_JWT`).
    KeyPair(PrivateKey),
}

/// Who logs in, and the session's defaults.
#[derive(Debug)]
pub struct Credentials {
    /// The account identifier: `myorg-myaccount`, or a locator such as `xy12345.us-east-1`.
    pub account: String,
    pub user: String,
    pub auth: Auth,
    pub role: Option<String>,
    pub warehouse: Option<String>,
    pub database: Option<String>,
    pub schema: Option<String>,
}

/// Transport settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Where Snowflake is; `https://<account>.snowflakecomputing.com` when absent.
    pub endpoint: Option<Url>,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_retries: u32,
    pub retry_budget: Duration,
    /// Sent as `SESSION_PARAMETERS` at login, e.g. `QUERY_TAG` or `TIMEZONE`.
    pub session_parameters: serde_json::Map<String, Value>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            endpoint: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            retry_budget: DEFAULT_RETRY_BUDGET,
            session_parameters: serde_json::Map::new(),
        }
    }
}

/// The rows of one statement, every value as text (see the `rowset` module for the forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    pub query_id: String,
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
}

/// One Snowflake session. Methods take `&mut self`: one statement at a time, in order.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    credentials: Credentials,
    options: ClientOptions,
    token: SecretString,
    master_token: Option<SecretString>,
    parameters: BTreeMap<String, Value>,
    sequence_id: u64,
    generation: u64,
    /// The statement sent and not yet answered: set when a query future was dropped.
    in_flight: Option<InFlight>,
}

#[derive(Debug)]
struct InFlight {
    request_id: String,
    sql: String,
}

/// One request to Snowflake's API.
struct Call<'a> {
    action: &'static str,
    method: Method,
    url: Url,
    body: Option<&'a Value>,
    /// Add `retry=true&retryCount=n` to retries (statements).
    mark_retries: bool,
}

/// The envelope of every answer.
#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    data: Value,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    success: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryData {
    #[serde(default)]
    query_id: String,
    #[serde(default)]
    rowtype: Vec<RowType>,
    #[serde(default)]
    query_result_format: String,
    #[serde(default)]
    rowset: Vec<Row>,
    #[serde(default)]
    rowset_base64: String,
    #[serde(default)]
    chunks: Vec<Chunk>,
    #[serde(default)]
    chunk_headers: BTreeMap<String, String>,
    #[serde(default)]
    qrmk: Option<String>,
    #[serde(default)]
    parameters: Vec<Parameter>,
}

#[derive(Debug, Deserialize)]
struct Chunk {
    url: String,
}

#[derive(Debug, Deserialize)]
struct Parameter {
    name: String,
    value: Value,
}

impl Client {
    /// Logs in and opens a session.
    pub async fn login(credentials: Credentials, options: ClientOptions) -> Result<Client> {
        let base = match &options.endpoint {
            Some(url) => url.clone(),
            None => default_endpoint(&credentials.account)?,
        };
        let http = http_client(&options)?;
        let mut client = Client {
            http,
            base,
            credentials,
            options,
            token: SecretString::from(""),
            master_token: None,
            parameters: BTreeMap::new(),
            sequence_id: 0,
            generation: 0,
            in_flight: None,
        };
        client.open_session().await?;
        Ok(client)
    }

    /// Increases whenever a new session replaced the old one (an open transaction is lost).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A session parameter as Snowflake last reported it (`TIMEZONE`, `AUTOCOMMIT`, …).
    pub fn parameter(&self, name: &str) -> Option<&Value> {
        self.parameters.get(name)
    }

    /// Runs one statement and returns its rows as text.
    pub async fn query(&mut self, sql: &str) -> Result<QueryResult> {
        let data = self.statement(sql).await?;
        let data: QueryData = serde_json::from_value(data)
            .map_err(|e| Error::protocol(None, format!("query answer: {e}")))?;
        self.read_result(data).await
    }

    /// Uploads `bytes` as `file_name` into the internal stage `stage` (`@name`, `@db.schema.name`
    /// or `@%table`, passed to `PUT` as given), replacing a file of that name.
    ///
    /// Supported: stages Snowflake hosts on GCS, uploaded through the presigned URL the `PUT`
    /// returns (fakesnow answers the same way). Not supported, with an [`Error::Unsupported`]:
    /// stages on S3 or Azure (they need SigV4 or SAS uploads) and stages with client-side
    /// encryption (`encryptionMaterial`; create the stage with
    /// `ENCRYPTION = (TYPE = 'SNOWFLAKE_SSE')`).
    pub async fn upload(&mut self, stage: &str, file_name: &str, bytes: Bytes) -> Result<()> {
        if file_name.is_empty()
            || file_name == "."
            || file_name == ".."
            || file_name.chars().any(|c| {
                matches!(c, '/' | '\\' | '\'' | '"') || c.is_control() || c.is_whitespace()
            })
        {
            return Err(Error::Config(format!(
                "stage file name {file_name:?} must be a plain name without quotes, slashes or spaces"
            )));
        }
        if !stage.starts_with('@') {
            return Err(Error::Config(format!("stage {stage:?} must start with @")));
        }
        let sql = format!(
            "PUT 'file:///{file_name}' {stage} AUTO_COMPRESS=FALSE SOURCE_COMPRESSION=NONE \
             OVERWRITE=TRUE"
        );
        let data = self.statement(&sql).await?;
        let info = &data["stageInfo"];
        let location_type = info["locationType"].as_str().unwrap_or_default();
        if !data["encryptionMaterial"].is_null() {
            return Err(Error::Unsupported(format!(
                "stage {stage} uses client-side encryption, which this client does not implement; \
                 create it with ENCRYPTION = (TYPE = 'SNOWFLAKE_SSE')"
            )));
        }
        let presigned = info["presignedUrl"].as_str().unwrap_or_default();
        if location_type != "GCS" || presigned.is_empty() {
            return Err(Error::Unsupported(format!(
                "uploading to a {location_type} stage{}: only GCS stages with a presigned URL are \
                 supported",
                if presigned.is_empty() {
                    " without a presigned URL"
                } else {
                    ""
                }
            )));
        }
        let url = Url::parse(presigned)
            .map_err(|e| Error::protocol(None, format!("presigned url: {e}")))?;
        let size = bytes.len();
        let (status, body) = self
            .send_retrying("stage upload", false, |_| {
                self.http
                    .put(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(bytes.clone())
            })
            .await?;
        if !(200..300).contains(&status) {
            return Err(status_error("stage upload", status, &body));
        }
        tracing::debug!(stage, file = file_name, bytes = size, "uploaded stage file");
        Ok(())
    }

    /// Asks Snowflake to abort the statement whose answer never arrived (its future was dropped,
    /// for a timeout or a shutdown). Returns whether there was one.
    pub async fn abort(&mut self) -> Result<bool> {
        let Some(in_flight) = self.in_flight.take() else {
            return Ok(false);
        };
        tracing::debug!(request_id = %in_flight.request_id, "aborting statement");
        let body = json!({"sqlText": in_flight.sql, "requestId": in_flight.request_id});
        let url = self.url("/queries/v1/abort-request", &[("requestId", request_id())]);
        let (status, answer) = self
            .call_in_session(Call {
                action: "abort",
                method: Method::POST,
                url,
                body: Some(&body),
                mark_retries: false,
            })
            .await?;
        into_data(answer, status, None)?;
        Ok(true)
    }

    /// Ends the session (`POST /session?delete=true`).
    pub async fn close(self) -> Result<()> {
        let url = self.url("/session", &[("delete", "true".into())]);
        let (status, answer) = self
            .call(
                &Call {
                    action: "logout",
                    method: Method::POST,
                    url,
                    body: None,
                    mark_retries: false,
                },
                &self.token,
            )
            .await?;
        into_data(answer, status, None).map(drop)
    }

    /// Runs a statement to the end; returns the `data` of its answer.
    async fn statement(&mut self, sql: &str) -> Result<Value> {
        self.sequence_id += 1;
        let request_id = request_id();
        let preview: String = sql.chars().take(LOGGED_STATEMENT_CHARS).collect();
        tracing::debug!(%request_id, statement = %preview, "running statement");
        self.in_flight = Some(InFlight {
            request_id: request_id.clone(),
            sql: sql.to_owned(),
        });
        let body = json!({
            "sqlText": sql,
            "sequenceId": self.sequence_id,
            "asyncExec": false,
            "describeOnly": false,
        });
        let url = self.url("/queries/v1/query-request", &[("requestId", request_id)]);
        let (mut status, mut answer) = self
            .call_in_session(Call {
                action: "query",
                method: Method::POST,
                url,
                body: Some(&body),
                mark_retries: true,
            })
            .await?;
        let mut poll = FIRST_POLL;
        while !answer.success && IN_PROGRESS.contains(&answer.code.as_deref().unwrap_or_default()) {
            let query_id = answer.data["queryId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let result_url = answer.data["getResultUrl"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("/queries/{query_id}/result"));
            tracing::debug!(query_id, "statement still running");
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(MAX_POLL);
            let url = self
                .base
                .join(&result_url)
                .map_err(|e| Error::protocol(Some(&query_id), format!("result url: {e}")))?;
            (status, answer) = self
                .call_in_session(Call {
                    action: "query result",
                    method: Method::GET,
                    url,
                    body: None,
                    mark_retries: false,
                })
                .await?;
        }
        self.in_flight = None;
        let query_id = answer.data["queryId"].as_str().map(str::to_owned);
        let data = into_data(answer, status, query_id)?;
        if let Some(id) = data["queryId"].as_str() {
            tracing::debug!(query_id = id, "statement done");
        }
        Ok(data)
    }

    /// The rows of a finished statement, with its chunks downloaded.
    async fn read_result(&mut self, data: QueryData) -> Result<QueryResult> {
        for p in data.parameters {
            self.parameters.insert(p.name, p.value);
        }
        let query_id = data.query_id;
        let bad = |reason: String| Error::protocol(Some(&query_id), reason);
        let arrow = data.query_result_format == "arrow";
        let mut rows = Vec::new();
        if arrow {
            let ipc = base64::engine::general_purpose::STANDARD
                .decode(&data.rowset_base64)
                .map_err(|e| bad(format!("rowsetBase64: {e}")))?;
            rowset::arrow_rows(&ipc, &mut rows).map_err(bad)?;
        } else {
            rows = rowset::json_rows(&data.rowtype, data.rowset).map_err(bad)?;
        }
        let mut headers = data.chunk_headers;
        if headers.is_empty()
            && let Some(qrmk) = data.qrmk
        {
            // Chunks on S3 are encrypted with this customer key (SSE-C).
            headers.insert(
                "x-amz-server-side-encryption-customer-algorithm".into(),
                "AES256".into(),
            );
            headers.insert("x-amz-server-side-encryption-customer-key".into(), qrmk);
        }
        for (n, chunk) in data.chunks.iter().enumerate() {
            let body = self.download_chunk(&chunk.url, &headers).await?;
            if arrow {
                rowset::arrow_rows(&body, &mut rows)
            } else {
                // A JSON chunk is the rows without the enclosing brackets.
                let mut text = Vec::with_capacity(body.len() + 2);
                text.push(b'[');
                text.extend_from_slice(&body);
                text.push(b']');
                serde_json::from_slice(&text)
                    .map_err(|e| e.to_string())
                    .and_then(|chunk_rows| rowset::json_rows(&data.rowtype, chunk_rows))
                    .map(|chunk_rows| rows.extend(chunk_rows))
            }
            .map_err(|e| bad(format!("chunk {n}: {e}")))?;
        }
        tracing::debug!(
            query_id,
            rows = rows.len(),
            chunks = data.chunks.len(),
            "read result"
        );
        Ok(QueryResult {
            query_id,
            columns: data.rowtype.into_iter().map(|c| c.name).collect(),
            rows,
        })
    }

    /// One result chunk, gunzipped when it is gzip (the URL is presigned: no session token).
    async fn download_chunk(&self, url: &str, headers: &BTreeMap<String, String>) -> Result<Bytes> {
        let url = Url::parse(url).map_err(|e| Error::protocol(None, format!("chunk url: {e}")))?;
        let (status, body) = self
            .send_retrying("result chunk download", false, |_| {
                headers
                    .iter()
                    .fold(self.http.get(url.clone()), |req, (k, v)| req.header(k, v))
            })
            .await?;
        if !(200..300).contains(&status) {
            return Err(status_error("result chunk download", status, &body));
        }
        if body.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&body[..]), &mut out)
                .map_err(|e| Error::protocol(None, format!("gzip result chunk: {e}")))?;
            return Ok(out.into());
        }
        Ok(body)
    }

    async fn open_session(&mut self) -> Result<()> {
        let c = &self.credentials;
        let mut data = json!({
            "CLIENT_APP_ID": "Sluice",
            "CLIENT_APP_VERSION": env!("CARGO_PKG_VERSION"),
            "ACCOUNT_NAME": account_name(&c.account),
            "LOGIN_NAME": c.user,
            "CLIENT_ENVIRONMENT": {"APPLICATION": "Sluice", "OS": std::env::consts::OS},
            "SESSION_PARAMETERS": self.options.session_parameters,
        });
        match &c.auth {
            Auth::Password(password) => data["PASSWORD"] = json!(password.expose_secret()),
            Auth::KeyPair(key) => {
                data["AUTHENTICATOR"] = json!("SNOWFLAKE_JWT");
                data["TOKEN"] = json!(key.jwt(&c.account, &c.user, SystemTime::now())?);
            }
        }
        let mut query = vec![("requestId", request_id())];
        for (name, value) in [
            ("databaseName", &c.database),
            ("schemaName", &c.schema),
            ("warehouse", &c.warehouse),
            ("roleName", &c.role),
        ] {
            if let Some(value) = value {
                query.push((name, value.clone()));
            }
        }
        let body = json!({ "data": data });
        let call = Call {
            action: "login",
            method: Method::POST,
            url: self.url("/session/v1/login-request", &query),
            body: Some(&body),
            mark_retries: false,
        };
        let (status, answer) = self.call(&call, &SecretString::from("")).await?;
        let data = into_data(answer, status, None)?;
        let token = data["token"]
            .as_str()
            .ok_or_else(|| Error::protocol(None, "login answer without a token"))?;
        self.token = SecretString::from(token);
        self.master_token = data["masterToken"].as_str().map(SecretString::from);
        if let Ok(parameters) = serde_json::from_value::<Vec<Parameter>>(data["parameters"].clone())
        {
            self.parameters = parameters.into_iter().map(|p| (p.name, p.value)).collect();
        }
        self.generation += 1;
        tracing::debug!(
            account = %c.account,
            user = %c.user,
            generation = self.generation,
            "snowflake session opened"
        );
        Ok(())
    }

    /// Renews the session token with the master token, or logs in again.
    async fn renew_session(&mut self, code: &str) -> Result<()> {
        if code == SESSION_EXPIRED
            && let Some(master) = &self.master_token
        {
            let body =
                json!({"oldSessionToken": self.token.expose_secret(), "requestType": "RENEW"});
            let call = Call {
                action: "session renewal",
                method: Method::POST,
                url: self.url("/session/token-request", &[("requestId", request_id())]),
                body: Some(&body),
                mark_retries: false,
            };
            let (status, answer) = self.call(&call, master).await?;
            match into_data(answer, status, None) {
                Ok(data) => {
                    if let Some(token) = data["sessionToken"].as_str() {
                        self.token = SecretString::from(token);
                        if let Some(master) = data["masterToken"].as_str() {
                            self.master_token = Some(SecretString::from(master));
                        }
                        tracing::debug!("snowflake session token renewed");
                        return Ok(());
                    }
                }
                Err(e) => tracing::debug!(error = %e, "session renewal refused; logging in again"),
            }
        }
        self.open_session().await
    }

    /// A call with the session token, renewing the session once if it expired.
    async fn call_in_session(&mut self, call: Call<'_>) -> Result<(u16, Answer)> {
        let (status, answer) = self.call(&call, &self.token).await?;
        let code = answer.code.clone().unwrap_or_default();
        if answer.success || ![SESSION_EXPIRED, MASTER_EXPIRED, LOGIN_AGAIN].contains(&&*code) {
            return Ok((status, answer));
        }
        tracing::debug!(code, "snowflake session expired");
        self.renew_session(&code).await?;
        self.call(&call, &self.token).await
    }

    /// Sends a call (retrying transient failures) and parses the answer's envelope.
    async fn call(&self, call: &Call<'_>, token: &SecretString) -> Result<(u16, Answer)> {
        let auth = (!token.expose_secret().is_empty())
            .then(|| {
                HeaderValue::from_str(&format!("Snowflake Token=\"{}\"", token.expose_secret()))
            })
            .transpose()
            .map_err(|_| Error::protocol(None, "session token is not a valid header value"))?
            .map(|mut value| {
                value.set_sensitive(true);
                value
            });
        let (status, body) = self
            .send_retrying(call.action, call.mark_retries, |attempt| {
                let mut url = call.url.clone();
                if attempt > 0 && call.mark_retries {
                    url.query_pairs_mut()
                        .append_pair("retry", "true")
                        .append_pair("retryCount", &attempt.to_string());
                }
                let mut req = self
                    .http
                    .request(call.method.clone(), url)
                    .header(ACCEPT, "application/snowflake");
                if let Some(auth) = &auth {
                    req = req.header(AUTHORIZATION, auth.clone());
                }
                if let Some(body) = call.body {
                    req = req.json(body);
                }
                req
            })
            .await?;
        match serde_json::from_slice::<Answer>(&body) {
            Ok(answer) => Ok((status, answer)),
            Err(_) => Err(status_error(call.action, status, &body)),
        }
    }

    /// Sends the request `build(attempt)` makes until it gets an answer that is not transient,
    /// or the retries or their time budget run out.
    async fn send_retrying(
        &self,
        action: &'static str,
        statement: bool,
        build: impl Fn(u32) -> RequestBuilder,
    ) -> Result<(u16, Bytes)> {
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            let outcome = match build(attempt).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    response
                        .bytes()
                        .await
                        .map(|body| (status, body))
                        .map_err(|source| Error::Http { action, source })
                }
                Err(source) => Err(Error::Http { action, source }),
            };
            let retryable = match &outcome {
                Err(_) => true,
                Ok((status, body)) => {
                    crate::error::transient_status(*status)
                        || (*status >= 500 && serde_json::from_slice::<Answer>(body).is_err())
                }
            };
            let delay = backoff(attempt);
            if !retryable
                || attempt >= self.options.max_retries
                || start.elapsed() + delay > self.options.retry_budget
            {
                return match outcome {
                    Ok((status, body)) if retryable => Err(status_error(action, status, &body)),
                    other => other,
                };
            }
            let error = match &outcome {
                Err(e) => e.to_string(),
                Ok((status, _)) => format!("http status {status}"),
            };
            tracing::warn!(
                action,
                attempt,
                statement,
                error,
                "retrying snowflake request"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        url.set_path(path);
        url.set_query(None);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }
}

/// The `data` of a successful answer, or the error it reports.
fn into_data(answer: Answer, http_status: u16, query_id: Option<String>) -> Result<Value> {
    if answer.success {
        return Ok(answer.data);
    }
    let data = &answer.data;
    let code = answer
        .code
        .or_else(|| data["errorCode"].as_str().map(str::to_owned))
        .unwrap_or_default();
    Err(Error::Server(Box::new(ServerError {
        query_id: query_id.or_else(|| data["queryId"].as_str().map(str::to_owned)),
        code,
        sql_state: data["sqlState"].as_str().map(str::to_owned),
        message: answer.message.unwrap_or_else(|| "no message".to_owned()),
        http_status,
    })))
}

fn status_error(action: &'static str, status: u16, body: &[u8]) -> Error {
    let text = String::from_utf8_lossy(body);
    Error::Status {
        action,
        status,
        body: text.chars().take(200).collect(),
    }
}

/// Full-jitter-free "equal jitter": half the exponential step plus a random part of the rest,
/// so concurrent clients spread out but no retry comes immediately.
fn backoff(attempt: u32) -> Duration {
    let step = FIRST_BACKOFF
        .saturating_mul(1 << attempt.min(16))
        .min(MAX_BACKOFF);
    let mut random = [0u8; 4];
    let fraction = match SystemRandom::new().fill(&mut random) {
        Ok(()) => f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    };
    step / 2 + (step / 2).mul_f64(fraction)
}

/// A random (version 4) UUID, as Snowflake wants for `requestId`.
fn request_id() -> String {
    let mut b = [0u8; 16];
    // The system RNG failing is not recoverable anyway; fall back to the clock for uniqueness.
    if SystemRandom::new().fill(&mut b).is_err() {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b = nanos.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `https://<account>.snowflakecomputing.com`, with the underscores a host name cannot have
/// replaced by hyphens, as Snowflake documents for account URLs.
fn default_endpoint(account: &str) -> Result<Url> {
    let host = account
        .trim_end_matches(".snowflakecomputing.com")
        .replace('_', "-")
        .to_lowercase();
    Url::parse(&format!("https://{host}.snowflakecomputing.com"))
        .map_err(|e| Error::Config(format!("account {account:?} gives no valid URL: {e}")))
}

/// reqwest on rustls with the ring provider; roots from the platform, else Mozilla's.
fn http_client(options: &ClientOptions) -> Result<reqwest::Client> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("tls configuration: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(concat!("Sluice/", env!("CARGO_PKG_VERSION")))
        .timeout(options.request_timeout)
        .connect_timeout(options.connect_timeout)
        .gzip(true)
        .build()
        .map_err(|e| Error::Config(format!("http client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_version_4_uuids() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(id, request_id());
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for attempt in 0..20 {
            let step = FIRST_BACKOFF
                .saturating_mul(1 << attempt.min(16))
                .min(MAX_BACKOFF);
            let delay = backoff(attempt);
            assert!(delay >= step / 2 && delay <= step, "{attempt}: {delay:?}");
        }
    }

    #[test]
    fn default_endpoints() {
        let url = |a| default_endpoint(a).expect("url").to_string();
        assert_eq!(
            url("myorg-my_account"),
            "https://myorg-my-account.snowflakecomputing.com/"
        );
        assert_eq!(
            url("xy12345.us-east-1"),
            "https://xy12345.us-east-1.snowflakecomputing.com/"
        );
    }

    #[test]
    fn failed_answer_keeps_code_state_and_query_id() {
        let answer: Answer = serde_json::from_str(
            r#"{"data":{"errorCode":"002003","sqlState":"42S02","queryId":"q1"},
                "code":"002003","message":"Table 'X' does not exist","success":false}"#,
        )
        .expect("answer");
        let err = into_data(answer, 200, None).expect_err("failure");
        let server = err.server().expect("server error");
        assert_eq!(
            (
                server.code.as_str(),
                server.sql_state.as_deref(),
                server.query_id.as_deref()
            ),
            ("002003", Some("42S02"), Some("q1"))
        );
    }

    /// A scripted stand-in for the answers fakesnow never gives: a 503, an expired session
    /// token, a statement still running, and a result in a gzipped, SSE-C "encrypted" chunk.
    #[tokio::test]
    async fn retry_renewal_polling_and_chunks() {
        use std::io::Write as _;
        use std::sync::Mutex;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let ipc = crate::rowset::tests::sample_stream();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&ipc).expect("gzip");
            let chunk = gz.finish().expect("gzip");
            let mut queries = 0;
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 65536];
                let mut len = 0;
                // Read the head and the body (Content-Length) of one request.
                loop {
                    let n = conn.read(&mut buf[len..]).await.expect("read");
                    len += n;
                    let text = String::from_utf8_lossy(&buf[..len]).to_string();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let body_len = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(str::to_owned)
                            })
                            .map_or(0, |v| v.trim().parse().expect("length"));
                        if len >= head_end + 4 + body_len || n == 0 {
                            break;
                        }
                    }
                }
                let head = String::from_utf8_lossy(&buf[..len]).to_string();
                let line = head.lines().next().unwrap_or_default().to_owned();
                let auth = head
                    .lines()
                    .find_map(|l| l.strip_prefix("authorization: "))
                    .unwrap_or_default()
                    .to_owned();
                log.lock().expect("log").push(format!("{line} {auth}"));
                let json = |v: Value| (200, "application/json", v.to_string().into_bytes());
                let (status, kind, body) = if line.starts_with("POST /session/v1/login-request") {
                    json(
                        json!({"success": true, "data": {"token": "t1", "masterToken": "m1",
                        "parameters": [{"name": "TIMEZONE", "value": "UTC"}]}}),
                    )
                } else if line.starts_with("POST /session/token-request") {
                    json(json!({"success": true, "data": {"sessionToken": "t2"}}))
                } else if line.starts_with("POST /queries/v1/query-request") {
                    queries += 1;
                    match queries {
                        1 => (503, "text/plain", b"busy".to_vec()),
                        2 => {
                            json(json!({"success": false, "code": "390112", "message": "expired"}))
                        }
                        _ => json(json!({"success": false, "code": "333334",
                            "data": {"queryId": "q1", "getResultUrl": "/queries/q1/result"}})),
                    }
                } else if line.starts_with("GET /queries/q1/result") {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(&ipc);
                    let rowtype: Vec<Value> = (0..11)
                        .map(|i| json!({"name": format!("C{i}"), "type": "text"}))
                        .collect();
                    json(
                        json!({"success": true, "data": {"queryId": "q1", "queryResultFormat": "arrow",
                        "rowtype": rowtype, "rowsetBase64": b64, "qrmk": "k",
                        "chunks": [{"url": format!("http://{addr}/chunk/0")}]}}),
                    )
                } else if line.starts_with("GET /chunk/0")
                    && head.contains("x-amz-server-side-encryption-customer-key: k")
                {
                    (200, "application/octet-stream", chunk.clone())
                } else {
                    (404, "text/plain", b"no such route".to_vec())
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
                let _ = conn.write_all(&body).await;
            }
        });
        let credentials = Credentials {
            account: "a".into(),
            user: "u".into(),
            auth: Auth::Password(SecretString::from("p")),
            role: None,
            warehouse: None,
            database: None,
            schema: None,
        };
        let options = ClientOptions {
            endpoint: Some(Url::parse(&format!("http://{addr}")).expect("url")),
            ..ClientOptions::default()
        };
        let mut client = Client::login(credentials, options).await.expect("login");
        let result = client.query("SELECT everything").await.expect("query");
        let mut expected = crate::rowset::tests::sample_rows();
        expected.extend(crate::rowset::tests::sample_rows());
        assert_eq!(result.rows, expected);
        assert_eq!(result.query_id, "q1");
        assert_eq!(client.generation(), 1, "a renewed token keeps the session");
        assert_eq!(client.parameter("TIMEZONE"), Some(&json!("UTC")));
        let seen = seen.lock().expect("log").clone();
        let paths: Vec<&str> = seen
            .iter()
            .map(|l| l.split(' ').nth(1).unwrap_or_default())
            .collect();
        assert_eq!(paths.len(), 7, "{seen:#?}");
        assert!(
            paths[1].starts_with("/queries/v1/query-request?requestId="),
            "{seen:#?}"
        );
        let request_id = &paths[1]["/queries/v1/query-request?requestId=".len()..];
        assert_eq!(
            paths[2],
            format!("/queries/v1/query-request?requestId={request_id}&retry=true&retryCount=1")
        );
        assert!(seen[2].ends_with("Snowflake Token=\"t1\""), "{seen:#?}");
        assert!(
            seen[3].starts_with("POST /session/token-request") && seen[3].ends_with("Token=\"m1\""),
            "{seen:#?}"
        );
        assert!(seen[4].ends_with("Snowflake Token=\"t2\""), "{seen:#?}");
        assert!(seen[5].starts_with("GET /queries/q1/result"), "{seen:#?}");
        assert!(
            seen[6].starts_with("GET /chunk/0 ") && !seen[6].contains("Token"),
            "{seen:#?}"
        );
    }
}
