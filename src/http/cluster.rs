//! Cluster mode over HTTP: every instance answers the whole API. Requests only a project's owner can
//! answer (its actors' state, its git repository, its record's changes) are proxied to the owner;
//! during a takeover they get 503 with `Retry-After`. Also the operators' status endpoint and the
//! internal route other members gather open tasks from.

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage as _, HttpResponse};
use futures_util::StreamExt as _;
use serde_json::json;

use super::error::ApiError;
use super::state::AppState;
use crate::cluster::table::Location;
use crate::cluster::Cluster;
use crate::model::event::CloudEvent;

/// Set on a proxied request (to the sending node's id): the receiver never proxies it again.
pub const FORWARDED_HEADER: &str = "x-keelson-forwarded";
/// Headers copied onto a proxied request.
const REQUEST_HEADERS: &[&str] = &["x-token", "content-type", "accept"];
/// Headers copied back from the owner's answer.
const RESPONSE_HEADERS: &[&str] = &["content-type", "retry-after", "location"];
/// A receiver that does not own the project answers this; the sender looks again once.
const MISDIRECTED: u16 = 421;
/// How long to wait before looking again after a misdirected answer (one ownership poll).
const RELOCATE_PAUSE: Duration = Duration::from_millis(250);
/// Gathering open tasks from a member gives up after this long (its shards are missing meanwhile).
const GATHER_TIMEOUT: Duration = Duration::from_secs(1);

/// What a request is about, when only its project's owner can answer it.
#[derive(Debug, PartialEq, Eq)]
enum Bound {
    Project(String),
    /// Project create or update: the name is in the body.
    NameInBody,
}

/// The project a request under `/api` needs the owner of, if any.
fn owner_bound(method: &Method, path: &str, query: &str) -> Option<Bound> {
    let path = path.strip_prefix("/api").unwrap_or(path);
    let segment = |rest: &str| -> Option<Bound> {
        let name = rest.split('/').next().filter(|name| !name.is_empty())?;
        let name = percent_encoding::percent_decode_str(name).decode_utf8().ok()?;
        Some(Bound::Project(name.into_owned()))
    };
    let query_project = || -> Option<Bound> {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, value)| key == "project" && !value.is_empty())
            .map(|(_, value)| Bound::Project(value.into_owned()))
    };
    if let Some(rest) = path.strip_prefix("/controlPlane/v1/project/") {
        return segment(rest);
    }
    if path == "/controlPlane/v1/project" && (method == Method::POST || method == Method::PUT) {
        return Some(Bound::NameInBody);
    }
    if path == "/v1/import/project" && method == Method::POST {
        return Some(Bound::NameInBody);
    }
    if let Some(rest) = path.strip_prefix("/controlPlane/v1/sequence/") {
        return segment(rest);
    }
    if path == "/controlPlane/v1/sequence-execution" || path.starts_with("/controlPlane/v1/event/triggered/") {
        return query_project();
    }
    if let Some(rest) = path.strip_prefix("/resource-service/v1/project/") {
        return segment(rest);
    }
    None
}

/// Proxies owner-bound requests to the project's owner (one hop at most).
pub async fn route_to_owner(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = request.app_data::<web::Data<AppState>>().expect("app state is registered").clone();
    let Some(cluster) = state.cluster.clone() else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    let Some(bound) = owner_bound(request.method(), request.path(), request.query_string()) else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    // The body is read only where it is needed: for the name of a project being created or updated,
    // and to send the request on; the owner's own handlers read it as usual.
    let (project, body) = match bound {
        Bound::Project(project) => (project, None),
        Bound::NameInBody => {
            let body = read_body(&mut request, state.max_request_body_bytes).await?;
            let name = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|body| body.get("name").and_then(serde_json::Value::as_str).map(str::to_owned))
                .filter(|name| !name.is_empty());
            match name {
                Some(name) => (name, Some(body)),
                // Invalid bodies are answered by the handler, wherever it runs.
                None => {
                    request.set_payload(actix_web::dev::Payload::from(body));
                    return Ok(next.call(request).await?.map_into_boxed_body());
                }
            }
        }
    };
    let forwarded = request.headers().contains_key(FORWARDED_HEADER);
    match cluster.table.locate(&project) {
        Location::Here => {
            if let Some(body) = body {
                request.set_payload(actix_web::dev::Payload::from(body));
            }
            Ok(next.call(request).await?.map_into_boxed_body())
        }
        Location::Node { node, .. } if forwarded => {
            let message = format!("project {project} is served by {node}");
            Ok(request.into_response(misdirected(&message)))
        }
        Location::Moving if forwarded => Ok(request.into_response(moving(&project))),
        _ => {
            let body = match body {
                Some(body) => body,
                None => read_body(&mut request, state.max_request_body_bytes).await?,
            };
            let response = proxy(&cluster, &request, &project, body).await;
            Ok(request.into_response(response))
        }
    }
}

async fn read_body(request: &mut ServiceRequest, limit: usize) -> Result<web::Bytes, actix_web::Error> {
    let mut payload = request.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {limit} bytes"),
            )
            .into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn misdirected(message: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(MISDIRECTED).expect("421 is a status"))
        .json(json!({ "code": MISDIRECTED, "message": message }))
}

fn moving(project: &str) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header(("Retry-After", "1"))
        .json(json!({ "code": 503, "message": format!("project {project} is moving between instances; retry") }))
}

/// Sends the request to the project's owner; looks again once if the owner changed meanwhile.
async fn proxy(cluster: &Cluster, request: &ServiceRequest, project: &str, body: web::Bytes) -> HttpResponse {
    for attempt in 0..2 {
        let Location::Node { node, url } = cluster.table.locate(project) else {
            if attempt == 0 {
                tokio::time::sleep(RELOCATE_PAUSE).await;
                continue;
            }
            break;
        };
        let target = match request.query_string() {
            "" => format!("{url}{}", request.path()),
            query => format!("{url}{}?{query}", request.path()),
        };
        let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut outgoing =
            cluster.http.request(method, &target).header(FORWARDED_HEADER, cluster.identity.node.as_str());
        for name in REQUEST_HEADERS {
            if let Some(value) = request.headers().get(*name).and_then(|value| value.to_str().ok()) {
                outgoing = outgoing.header(*name, value);
            }
        }
        let answer = match outgoing.body(body.clone()).send().await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::debug!(%node, %error, "cluster: proxied request failed");
                metrics::counter!("keelson_forwarded_total", "kind" => "http", "outcome" => "failed").increment(1);
                if attempt == 0 {
                    tokio::time::sleep(RELOCATE_PAUSE).await;
                    continue;
                }
                break;
            }
        };
        if answer.status().as_u16() == MISDIRECTED {
            metrics::counter!("keelson_forwarded_total", "kind" => "http", "outcome" => "misdirected").increment(1);
            tokio::time::sleep(RELOCATE_PAUSE).await;
            continue;
        }
        metrics::counter!("keelson_forwarded_total", "kind" => "http", "outcome" => "ok").increment(1);
        let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut response = HttpResponse::build(status);
        for name in RESPONSE_HEADERS {
            if let Some(value) = answer.headers().get(*name).and_then(|value| value.to_str().ok()) {
                response.insert_header((*name, value.to_owned()));
            }
        }
        return match answer.bytes().await {
            Ok(bytes) => response.body(bytes),
            Err(_) => moving(project),
        };
    }
    moving(project)
}

/// `GET /api/v1/cluster`: this instance's view of members and shard owners.
#[utoipa::path(get, path = "/api/v1/cluster", tag = "operations", operation_id = "getCluster",
    summary = "Members and shard owners, as this instance sees them",
    responses(
        (status = 200, description = "The cluster", body = super::schemas::ClusterStatus),
        (status = 404, description = "Not running as a cluster", body = super::error::ErrorBody),
    ))]
pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(cluster) = &state.cluster else {
        return Err(ApiError::not_found("this Keelson does not run as a cluster (KEELSON_CLUSTER)"));
    };
    let shards: Vec<serde_json::Value> = (0..cluster.table.shards())
        .map(|shard| {
            let slot = cluster.table.slot(shard);
            match slot.owner {
                Some((owner, epoch)) => json!({ "shard": shard, "owner": owner, "epoch": epoch }),
                None => json!({ "shard": shard, "owner": null, "epoch": null }),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "nodeId": cluster.identity.node,
        "members": cluster.table.members(),
        "shards": shards,
    })))
}

/// `GET /api/internal/v1/open-tasks/{eventType}`: the open task events of the projects served here.
pub async fn open_tasks(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let events = state.control.open_tasks(&path.into_inner());
    HttpResponse::Ok().json(events.iter().map(|event| &**event).collect::<Vec<_>>())
}

/// `POST /api/internal/v1/fault` (only in builds with the `fault-injection` feature):
/// `{"holdSnapshotBatchMs": N}` holds the next batch of fenced writes for N ms.
#[cfg(feature = "fault-injection")]
pub async fn fault(state: web::Data<AppState>, body: web::Json<serde_json::Value>) -> Result<HttpResponse, ApiError> {
    let Some(millis) = body.get("holdSnapshotBatchMs").and_then(serde_json::Value::as_u64) else {
        return Err(ApiError::bad_request("expected {\"holdSnapshotBatchMs\": <ms>}"));
    };
    state.control.router().runtime().snapshots.hold_next_batch(millis);
    Ok(HttpResponse::Ok().json(json!({})))
}

/// Open task events of `event_type` on every member, this one included; a member that does not
/// answer within a second is left out (its shards' tasks show up again on the next poll).
pub async fn gather_open_tasks(state: &AppState, cluster: &Arc<Cluster>, event_type: &str) -> Vec<Arc<CloudEvent>> {
    let mut events = state.control.open_tasks(event_type);
    let others: Vec<String> = cluster
        .table
        .members()
        .into_iter()
        .filter(|member| member.node_id != cluster.identity.node)
        .map(|member| member.advertise_url)
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(event_type, percent_encoding::NON_ALPHANUMERIC).to_string();
    let requests = others.into_iter().map(|url| {
        let request = cluster
            .http
            .get(format!("{url}/api/internal/v1/open-tasks/{encoded}"))
            .header("x-token", state.token.as_str())
            .timeout(GATHER_TIMEOUT)
            .send();
        async move {
            let answer = request.await.ok()?.error_for_status().ok()?;
            answer.json::<Vec<CloudEvent>>().await.ok()
        }
    });
    for remote in futures_util::future::join_all(requests).await.into_iter().flatten() {
        events.extend(remote.into_iter().map(Arc::new));
    }
    let mut seen = std::collections::HashSet::new();
    events.retain(|event| seen.insert(event.id.clone()));
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(method: Method, path: &str, query: &str) -> Option<Bound> {
        owner_bound(&method, path, query)
    }

    fn project(name: &str) -> Option<Bound> {
        Some(Bound::Project(name.to_owned()))
    }

    #[test]
    fn requests_about_one_project_go_to_its_owner() {
        assert_eq!(bound(Method::GET, "/api/controlPlane/v1/project/sockshop", ""), project("sockshop"));
        assert_eq!(bound(Method::DELETE, "/api/controlPlane/v1/project/sockshop", ""), project("sockshop"));
        assert_eq!(
            bound(Method::GET, "/api/controlPlane/v1/project/sockshop/stage/dev/service", ""),
            project("sockshop")
        );
        assert_eq!(bound(Method::POST, "/api/controlPlane/v1/project", ""), Some(Bound::NameInBody));
        assert_eq!(bound(Method::PUT, "/api/controlPlane/v1/project", ""), Some(Bound::NameInBody));
        assert_eq!(bound(Method::POST, "/api/v1/import/project", ""), Some(Bound::NameInBody));
        assert_eq!(bound(Method::POST, "/api/v1/import/events", ""), None);
        assert_eq!(bound(Method::POST, "/api/controlPlane/v1/sequence/sockshop/ctx/control", ""), project("sockshop"));
        assert_eq!(
            bound(Method::GET, "/api/controlPlane/v1/sequence-execution", "project=sockshop&stage=dev"),
            project("sockshop")
        );
        assert_eq!(
            bound(
                Method::GET,
                "/api/controlPlane/v1/event/triggered/sh.keptn.event.t1.triggered",
                "project=sock%20shop"
            ),
            project("sock shop")
        );
        assert_eq!(
            bound(Method::PUT, "/api/resource-service/v1/project/sockshop/stage/dev/resource", ""),
            project("sockshop")
        );
        assert_eq!(
            bound(Method::GET, "/api/resource-service/v1/project/sock%2Dshop/resource", ""),
            project("sock-shop")
        );
    }

    #[test]
    fn shared_data_is_answered_anywhere() {
        for path in [
            "/api/controlPlane/v1/project",
            "/api/controlPlane/v1/uniform/registration",
            "/api/mongodb-datastore/event",
            "/api/secrets/v1/secret",
            "/api/v1/event",
            "/api/v1/cluster",
            "/api/controlPlane/v1/event/triggered/sh.keptn.event.t1.triggered",
            "/api/controlPlane/v1/sequence-execution",
        ] {
            assert_eq!(bound(Method::GET, path, ""), None, "{path}");
        }
        assert_eq!(bound(Method::GET, "/api/controlPlane/v1/sequence-execution", "project="), None);
    }
}
