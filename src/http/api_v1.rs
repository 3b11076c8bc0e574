//! `/api/v1`: metadata (auth lives in [`super::auth`]).

use actix_web::HttpResponse;
use serde::Serialize;

/// The Keptn release whose API Keelson speaks; the Keptn CLI warns when this differs from its version.
pub const KEPTN_COMPATIBLE_VERSION: &str = "1.4.5";
/// The shipyard version Keptn 1.4.5 reports.
pub const SHIPYARD_VERSION: &str = "0.2.0";

#[derive(Serialize, utoipa::ToSchema)]
struct Metadata {
    automaticprovisioning: bool,
    bridgeversion: &'static str,
    keptnlabel: &'static str,
    keptnversion: &'static str,
    namespace: &'static str,
    shipyardversion: &'static str,
    keelsonversion: &'static str,
}

/// `GET /api/v1/metadata`.
#[utoipa::path(get, path = "/api/v1/metadata", tag = "api", operation_id = "metadata",
    summary = "Versions of the API, the Bridge and the shipyard format",
    responses((status = 200, description = "Metadata", body = Metadata)))]
pub async fn metadata() -> HttpResponse {
    HttpResponse::Ok().json(Metadata {
        automaticprovisioning: false,
        bridgeversion: concat!("keelson-", env!("CARGO_PKG_VERSION")),
        keptnlabel: "keptn",
        keptnversion: KEPTN_COMPATIBLE_VERSION,
        namespace: "keelson",
        shipyardversion: SHIPYARD_VERSION,
        keelsonversion: env!("CARGO_PKG_VERSION"),
    })
}
