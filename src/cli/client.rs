//! The API client and the stored credentials (`~/.keptn/.keptn`, mode 0600).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::CliError;

/// Where `keptn auth` stored the endpoint and token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// Ends in `/api`, as Keptn's CLI stores it.
    pub endpoint: String,
    #[serde(rename = "apiToken")]
    pub api_token: String,
}

fn keptn_dir() -> Result<PathBuf, CliError> {
    let home = std::env::var_os("HOME").ok_or_else(|| CliError::Usage("HOME is not set".into()))?;
    Ok(PathBuf::from(home).join(".keptn"))
}

/// `http://host:8080` → `http://host:8080/api`; an endpoint with a path is kept as it is.
pub fn api_endpoint(given: &str) -> Result<String, CliError> {
    let with_scheme = if given.contains("://") { given.to_owned() } else { format!("http://{given}") };
    let mut url = url::Url::parse(&with_scheme)
        .map_err(|error| CliError::Usage(format!("invalid endpoint '{given}': {error}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(CliError::Usage(format!("invalid endpoint '{given}': use http:// or https://")));
    }
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/api");
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

impl Credentials {
    /// `KEPTN_ENDPOINT` and `KEPTN_API_TOKEN` win over the stored credentials.
    pub fn load() -> Result<Self, CliError> {
        let path = keptn_dir()?.join(".keptn");
        let stored: Option<Credentials> = match std::fs::read(&path) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|error| {
                CliError::Usage(format!("{} is damaged ({error}); run keptn auth again", path.display()))
            })?),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(CliError::Io(format!("cannot read {}: {error}", path.display()))),
        };
        let endpoint = std::env::var("KEPTN_ENDPOINT").ok().filter(|value| !value.is_empty());
        let token = std::env::var("KEPTN_API_TOKEN").ok().filter(|value| !value.is_empty());
        match (endpoint, token, stored) {
            (Some(endpoint), Some(api_token), _) => Ok(Credentials { endpoint: api_endpoint(&endpoint)?, api_token }),
            (endpoint, token, Some(stored)) => Ok(Credentials {
                endpoint: match endpoint {
                    Some(endpoint) => api_endpoint(&endpoint)?,
                    None => stored.endpoint,
                },
                api_token: token.unwrap_or(stored.api_token),
            }),
            _ => Err(CliError::Usage(
                "no credentials: run `keptn auth --endpoint URL --api-token TOKEN` (or set KEPTN_ENDPOINT and KEPTN_API_TOKEN)"
                    .into(),
            )),
        }
    }

    /// Stores the credentials readable by the user only.
    pub fn store(&self) -> Result<PathBuf, CliError> {
        use std::io::Write as _;
        let dir = keptn_dir()?;
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            builder.mode(0o700);
        }
        builder.create(&dir).map_err(|error| CliError::Io(format!("cannot create {}: {error}", dir.display())))?;
        let path = dir.join(".keptn");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file =
            options.open(&path).map_err(|error| CliError::Io(format!("cannot write {}: {error}", path.display())))?;
        // A file that existed with wider permissions is narrowed too.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
        }
        let json = serde_json::to_vec_pretty(self).expect("credentials serialise");
        file.write_all(&json).map_err(|error| CliError::Io(format!("cannot write {}: {error}", path.display())))?;
        Ok(path)
    }

    /// The Bridge's URL: the endpoint's scheme and host with `/bridge`.
    pub fn bridge_url(&self) -> String {
        match url::Url::parse(&self.endpoint) {
            Ok(url) => format!("{}/bridge", url.origin().ascii_serialization()),
            Err(_) => String::new(),
        }
    }
}

/// Calls the API with the token; turns every failure into one line.
pub struct ApiClient {
    pub credentials: Credentials,
    http: reqwest::Client,
    verbose: bool,
}

impl ApiClient {
    pub fn new(credentials: Credentials, verbose: bool) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            // A redirect would carry the x-token to wherever it points (and turn POSTs into GETs).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a default HTTP client builds");
        Self { credentials, http, verbose }
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    /// The `key` lists of every page of `path` (which carries its own `pageSize`), following
    /// `nextPageKey` until it is absent, empty or `"0"`, reading at most `max_pages` pages.
    pub async fn pages(&self, path: &str, key: &str, max_pages: usize) -> Result<Vec<Value>, CliError> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..max_pages.max(1) {
            let page = match &next {
                Some(page_key) => {
                    self.get(&format!("{path}{separator}nextPageKey={}", super::input::encode(page_key))).await?
                }
                None => self.get(path).await?,
            };
            items.extend(page[key].as_array().cloned().unwrap_or_default());
            match page["nextPageKey"].as_str() {
                Some(page_key) if !page_key.is_empty() && page_key != "0" => next = Some(page_key.to_owned()),
                _ => break,
            }
        }
        Ok(items)
    }

    pub async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.credentials.endpoint);
        if self.verbose {
            eprintln!("{method} {url}");
        }
        let mut request = self.http.request(method, &url).header("x-token", &self.credentials.api_token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|error| {
            CliError::Unreachable(format!(
                "cannot reach the Keptn API at {}: {}",
                self.credentials.endpoint,
                root_cause(&error)
            ))
        })?;
        let status = response.status();
        if status.is_redirection() {
            let location =
                response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("?");
            return Err(CliError::Usage(format!(
                "the endpoint {} redirects to {location}; run keptn auth with the API's own URL",
                self.credentials.endpoint
            )));
        }
        let text = response.text().await.unwrap_or_default();
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(parsed);
        }
        let message = parsed["message"].as_str().map(str::to_owned).unwrap_or_else(|| text.trim().to_owned());
        let message = message.replace('\n', " ");
        Err(match status.as_u16() {
            401 => CliError::Auth(format!(
                "You are not authenticated: the API token was refused by {} (run keptn auth)",
                self.credentials.endpoint
            )),
            403 => CliError::Auth("You do not have enough permissions".into()),
            429 => CliError::Api { status: 429, message: "too many requests with a wrong token; wait a second".into() },
            code => CliError::Api { status: code, message },
        })
    }
}

/// The innermost cause of a transport error, without the URL (already said).
fn root_cause(error: &reqwest::Error) -> String {
    let mut message = if error.is_timeout() { "timed out" } else { "request failed" }.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message = cause.to_string();
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_the_api_path_when_they_have_none() {
        assert_eq!(api_endpoint("http://127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080/api");
        assert_eq!(api_endpoint("http://127.0.0.1:8080/").unwrap(), "http://127.0.0.1:8080/api");
        assert_eq!(api_endpoint("https://keptn.example/api").unwrap(), "https://keptn.example/api");
        assert_eq!(api_endpoint("keptn.example:80").unwrap(), "http://keptn.example/api");
        assert!(api_endpoint("ftp://x").is_err());
        let credentials = Credentials { endpoint: "https://keptn.example/api".into(), api_token: "t".into() };
        assert_eq!(credentials.bridge_url(), "https://keptn.example/bridge");
    }
}
