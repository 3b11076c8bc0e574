//! A git smart-HTTP server on 127.0.0.1 for upstream tests: actix-web in front of `git http-backend`
//! (CGI), with HTTP basic auth checked against one user and token.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

/// A running git server. Repositories live under `root`; `url(name)` is the remote URL of `name.git`.
pub struct GitHttpServer {
    pub port: u16,
    pub root: PathBuf,
    _dir: tempfile::TempDir,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        // Stop without waiting; the thread's System ends with it.
        let handle = self.handle.clone();
        std::thread::spawn(move || actix_rt::System::new().block_on(handle.stop(false)));
    }
}

#[derive(Clone)]
struct Credentials {
    user: String,
    token: String,
    root: PathBuf,
}

impl GitHttpServer {
    /// Starts the server; pushes and fetches need `user`/`token` as basic auth.
    pub fn start(user: &str, token: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let credentials = Credentials { user: user.to_owned(), token: token.to_owned(), root: root.clone() };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(web::Data::new(credentials.clone()))
                        .app_data(web::PayloadConfig::new(256 * 1024 * 1024))
                        .default_service(web::to(cgi))
                })
                .workers(1)
                .listen(listener)
                .unwrap()
                .run();
                sender.send(server.handle()).unwrap();
                server.await.unwrap();
            });
        });
        let handle = receiver.recv().unwrap();
        Self { port, root, _dir: dir, handle }
    }

    /// Creates an empty bare repository `name.git` and returns its URL.
    pub fn create_repo(&self, name: &str) -> String {
        let path = self.root.join(format!("{name}.git"));
        git(&self.root, &["init", "--bare", "--quiet", "--initial-branch=master", path.to_str().unwrap()]);
        self.url(name)
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}.git", self.port)
    }

    pub fn repo_path(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.git"))
    }

    /// Content of `path` on `branch` of repository `name`, read with the git CLI; `None` if absent.
    pub fn read_file(&self, name: &str, branch: &str, path: &str) -> Option<String> {
        let output = Command::new("git")
            .arg("--git-dir")
            .arg(self.repo_path(name))
            .args(["show", &format!("{branch}:{path}")])
            .output()
            .unwrap();
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Branch names of repository `name`.
    pub fn branches(&self, name: &str) -> Vec<String> {
        let output = Command::new("git")
            .arg("--git-dir")
            .arg(self.repo_path(name))
            .args(["for-each-ref", "--format=%(refname:short)", "refs/heads"])
            .output()
            .unwrap();
        let mut branches: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
        branches.sort();
        branches
    }

    /// Gives an empty repository a first commit on `master`, as a pre-initialised upstream has.
    pub fn commit_directly_init(&self, name: &str) {
        let work = tempfile::tempdir().unwrap();
        let checkout = work.path();
        git(checkout, &["init", "--quiet", "--initial-branch=master"]);
        std::fs::write(checkout.join("README.md"), "existing").unwrap();
        git(checkout, &["add", "."]);
        git(
            checkout,
            &["-c", "user.name=other", "-c", "user.email=other@localhost", "commit", "--quiet", "-m", "init"],
        );
        git(checkout, &["push", "--quiet", self.repo_path(name).to_str().unwrap(), "master"]);
    }

    /// Commits `content` to `path` on `branch` directly in the server's repository, as another
    /// user of the upstream would.
    pub fn commit_directly(&self, name: &str, branch: &str, path: &str, content: &str) {
        let work = tempfile::tempdir().unwrap();
        let repo = self.repo_path(name);
        git(work.path(), &["clone", "--quiet", "--branch", branch, repo.to_str().unwrap(), "w"]);
        let checkout = work.path().join("w");
        if let Some(parent) = Path::new(path).parent() {
            std::fs::create_dir_all(checkout.join(parent)).unwrap();
        }
        std::fs::write(checkout.join(path), content).unwrap();
        git(&checkout, &["add", "."]);
        git(
            &checkout,
            &["-c", "user.name=other", "-c", "user.email=other@localhost", "commit", "--quiet", "-m", "direct"],
        );
        git(&checkout, &["push", "--quiet", "origin", branch]);
    }
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git").current_dir(dir).args(args).status().unwrap();
    assert!(status.success(), "git {args:?} failed");
}

fn authorized(request: &HttpRequest, credentials: &Credentials) -> bool {
    use base64::Engine as _;
    let Some(header) = request.headers().get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = header.strip_prefix("Basic ") else { return false };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else { return false };
    decoded == format!("{}:{}", credentials.user, credentials.token).as_bytes()
}

async fn cgi(request: HttpRequest, body: web::Bytes, credentials: web::Data<Credentials>) -> HttpResponse {
    if !authorized(&request, &credentials) {
        return HttpResponse::Unauthorized().insert_header(("WWW-Authenticate", "Basic realm=\"git\"")).finish();
    }
    let credentials = credentials.get_ref().clone();
    let method = request.method().to_string();
    let path = request.path().to_owned();
    let query = request.query_string().to_owned();
    let content_type =
        request.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let output = web::block(move || {
        let mut child = Command::new("git")
            .arg("http-backend")
            .env("GIT_PROJECT_ROOT", &credentials.root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("REMOTE_USER", &credentials.user)
            .env("REQUEST_METHOD", method)
            .env("PATH_INFO", path)
            .env("QUERY_STRING", query)
            .env("CONTENT_TYPE", content_type)
            .env("CONTENT_LENGTH", body.len().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        child.stdin.take().unwrap().write_all(&body)?;
        child.wait_with_output()
    })
    .await
    .unwrap()
    .unwrap();
    parse_cgi(&output.stdout)
}

fn parse_cgi(output: &[u8]) -> HttpResponse {
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| output.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, separator)) = split else { return HttpResponse::InternalServerError().finish() };
    let head = String::from_utf8_lossy(&output[..end]);
    let mut response = HttpResponse::Ok();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse().ok()).unwrap_or(500);
            response.status(actix_web::http::StatusCode::from_u16(code).unwrap());
        } else {
            response.insert_header((name.trim().to_owned(), value.to_owned()));
        }
    }
    response.body(output[end + separator..].to_vec())
}
