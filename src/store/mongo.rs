//! MongoDB backend of [`EventStore`]: one collection per project, as Keptn's datastore lays it out, plus
//! `keptnUnmappedEvents` for events without a project and `keptnContextToProject` to find a context's project.

use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashSet;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Database, IndexModel};

use super::{Error, EventQuery, EventStore, Result, UNMAPPED_EVENTS};
use crate::model::event::CloudEvent;

const BACKEND: &str = "mongodb";
/// Database used when the connection string names none.
pub const DEFAULT_DATABASE: &str = "keelson";
const CONTEXT_TO_PROJECT: &str = "keptnContextToProject";
/// How long to look for a reachable server before an operation fails.
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct MongoEventStore {
    database: Database,
    /// Collections whose indexes were created by this process; creating them again is harmless but slow.
    indexed_collections: std::sync::Arc<DashSet<String>>,
}

impl MongoEventStore {
    /// Connects and checks the server answers `ping`.
    pub async fn connect(url: &str) -> Result<Self> {
        let mut options = ClientOptions::parse(url).await.map_err(|e| Error::unavailable(BACKEND, e))?;
        options.server_selection_timeout = Some(SERVER_SELECTION_TIMEOUT);
        options.connect_timeout = Some(SERVER_SELECTION_TIMEOUT);
        options.app_name = Some("keelson".to_owned());
        let database_name = options.default_database.clone().unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        let client = Client::with_options(options).map_err(|e| Error::unavailable(BACKEND, e))?;
        let database = client.database(&database_name);
        database.run_command(doc! { "ping": 1 }).await.map_err(|e| Error::unavailable(BACKEND, e))?;
        Ok(Self { database, indexed_collections: Default::default() })
    }

    async fn ensure_indexes(&self, collection_name: &str) -> Result<()> {
        if self.indexed_collections.contains(collection_name) {
            return Ok(());
        }
        let collection = self.database.collection::<Document>(collection_name);
        let mut indexes = vec![IndexModel::builder()
            .keys(doc! { "id": 1 })
            .options(IndexOptions::builder().unique(true).build())
            .build()];
        for field in ["shkeptncontext", "triggeredid", "type", "time", "data.stage", "data.service"] {
            indexes.push(IndexModel::builder().keys(doc! { field: 1 }).build());
        }
        collection.create_indexes(indexes).await.map_err(|e| Error::unavailable(BACKEND, e))?;
        self.indexed_collections.insert(collection_name.to_owned());
        Ok(())
    }

    async fn project_of_context(&self, keptn_context: &str) -> Result<Option<String>> {
        let mapping = self
            .database
            .collection::<Document>(CONTEXT_TO_PROJECT)
            .find_one(doc! { "_id": keptn_context })
            .await
            .map_err(|e| Error::unavailable(BACKEND, e))?;
        Ok(mapping.and_then(|document| document.get_str("projectName").ok().map(str::to_owned)))
    }
}

#[async_trait]
impl EventStore for MongoEventStore {
    async fn insert(&self, event: &CloudEvent) -> Result<bool> {
        let collection_name = event.project().unwrap_or(UNMAPPED_EVENTS).to_owned();
        self.ensure_indexes(&collection_name).await?;
        let document = mongodb::bson::to_document(event)
            .map_err(|e| Error::Corrupt { key: event.id.clone(), message: e.to_string() })?;
        let outcome = self
            .database
            .collection::<Document>(&collection_name)
            .update_one(doc! { "id": &event.id }, doc! { "$setOnInsert": document })
            .upsert(true)
            .await
            .map_err(|e| Error::unavailable(BACKEND, e))?;
        if let Some(project) = event.project() {
            if !event.shkeptncontext.is_empty() {
                self.database
                    .collection::<Document>(CONTEXT_TO_PROJECT)
                    .update_one(
                        doc! { "_id": &event.shkeptncontext },
                        doc! { "$setOnInsert": { "projectName": project } },
                    )
                    .upsert(true)
                    .await
                    .map_err(|e| Error::unavailable(BACKEND, e))?;
            }
        }
        Ok(outcome.upserted_id.is_some())
    }

    async fn find(&self, query: &EventQuery) -> Result<Vec<CloudEvent>> {
        let collection_name = match (&query.project, &query.keptn_context) {
            (Some(project), _) => project.clone(),
            (None, Some(context)) => {
                self.project_of_context(context).await?.unwrap_or_else(|| UNMAPPED_EVENTS.to_owned())
            }
            (None, None) => UNMAPPED_EVENTS.to_owned(),
        };
        let mut filter = Document::new();
        if let Some(event_type) = &query.event_type {
            filter.insert("type", event_type);
        }
        if let Some(context) = &query.keptn_context {
            filter.insert("shkeptncontext", context);
        }
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let documents: Vec<Document> = self
            .database
            .collection::<Document>(&collection_name)
            .find(filter)
            .sort(doc! { "time": -1 })
            .limit(limit)
            .projection(doc! { "_id": 0 })
            .await
            .map_err(|e| Error::unavailable(BACKEND, e))?
            .try_collect()
            .await
            .map_err(|e| Error::unavailable(BACKEND, e))?;
        documents
            .into_iter()
            .map(|document| {
                mongodb::bson::from_document(document)
                    .map_err(|e| Error::Corrupt { key: collection_name.clone(), message: e.to_string() })
            })
            .collect()
    }
}
