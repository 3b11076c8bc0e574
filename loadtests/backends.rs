//! Real stores for the load tests: a `redis-server` and a SecantusDB on free loopback ports, and the
//! raw rates they reach, measured in the same run as the baseline for Keelson's figures.

use std::time::Duration;

/// A `redis-server` and a SecantusDB (MongoDB wire protocol) on free loopback ports, stopped on drop.
/// SecantusDB runs under `$KEELSON_TEST_SECANTUS_PYTHON` (default `python3`), as in the tests.
pub struct Backends {
    pub redis_url: String,
    pub redis_port: u16,
    pub mongodb_url: String,
    children: Vec<std::process::Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Backends {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "server on port {port} did not start");
        std::thread::sleep(Duration::from_millis(25));
    }
}

impl Backends {
    pub fn start() -> Self {
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let (redis_port, mongo_port) = (free_port(), free_port());
        let redis = Command::new("redis-server")
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let python = std::env::var("KEELSON_TEST_SECANTUS_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let mongo = Command::new(python)
            .args([
                "-m",
                "secantus",
                "--host",
                "127.0.0.1",
                "--port",
                &mongo_port.to_string(),
                "--storage-path",
                ":memory:",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("secantusdb (pip install secantusdb)");
        wait_for_port(redis_port);
        wait_for_port(mongo_port);
        Self {
            redis_url: format!("redis://127.0.0.1:{redis_port}"),
            redis_port,
            mongodb_url: format!("mongodb://127.0.0.1:{mongo_port}/keelson_load"),
            children: vec![redis, mongo],
            _dir: dir,
        }
    }

    /// `redis-benchmark -t set -P 1`: SETs per second without pipelining, the raw round-trip rate.
    pub fn redis_set_rate(&self) -> f64 {
        let output = std::process::Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &self.redis_port.to_string(), "-t", "set", "-P", "1", "-n", "100000", "-q"])
            .output()
            .expect("redis-benchmark (part of redis-tools)");
        let text = String::from_utf8_lossy(&output.stdout);
        // "SET: 61349.69 requests per second, p50=0.423 msec"; progress lines end in a carriage return.
        let rates: Vec<f64> = text
            .split(['\r', '\n'])
            .filter_map(|line| line.trim().strip_prefix("SET: "))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect();
        rates.last().copied().unwrap_or(0.0)
    }

    /// Documents per second the MongoDB-compatible server stores: one `insert` per document, in batches
    /// of 1000 (as the history writer does), and in batches of 1000 into a collection with the history's
    /// seven indexes.
    pub async fn mongodb_insert_rates(&self) -> (f64, f64, f64) {
        use mongodb::bson::doc;
        let client = mongodb::Client::with_uri_str(&self.mongodb_url).await.unwrap();
        let collection = client.database("baseline").collection::<mongodb::bson::Document>("events");
        let document = |index: u64| {
            doc! {
                "id": uuid::Uuid::new_v4().to_string(), "type": "sh.keptn.event.deployment.finished",
                "shkeptncontext": uuid::Uuid::new_v4().to_string(), "source": "baseline", "specversion": "1.0",
                "time": "2026-01-01T00:00:00.000000000Z", "index": index as i64,
                "data": { "project": "load", "stage": "dev", "service": "svc", "result": "pass", "status": "succeeded" },
            }
        };
        let started = std::time::Instant::now();
        let mut single = 0u64;
        while started.elapsed() < Duration::from_secs(3) {
            collection.insert_one(document(single)).await.unwrap();
            single += 1;
        }
        let single_rate = single as f64 / started.elapsed().as_secs_f64();
        let started = std::time::Instant::now();
        let mut batched = 0u64;
        while started.elapsed() < Duration::from_secs(3) {
            collection.insert_many((0..1000).map(|i| document(batched + i))).await.unwrap();
            batched += 1000;
        }
        let batched_rate = batched as f64 / started.elapsed().as_secs_f64();
        let indexed = client.database("baseline").collection::<mongodb::bson::Document>("indexed");
        let mut indexes = vec![mongodb::IndexModel::builder()
            .keys(doc! { "id": 1 })
            .options(mongodb::options::IndexOptions::builder().unique(true).build())
            .build()];
        for field in ["shkeptncontext", "triggeredid", "type", "time", "data.stage", "data.service"] {
            indexes.push(mongodb::IndexModel::builder().keys(doc! { field: 1 }).build());
        }
        indexed.create_indexes(indexes).await.unwrap();
        let started = std::time::Instant::now();
        let mut inserted = 0u64;
        while started.elapsed() < Duration::from_secs(3) {
            indexed.insert_many((0..1000).map(|i| document(inserted + i))).await.unwrap();
            inserted += 1000;
        }
        (single_rate, batched_rate, inserted as f64 / started.elapsed().as_secs_f64())
    }
}
