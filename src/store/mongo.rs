//! MongoDB backend of [`EventStore`]: one collection per project, as Keptn's datastore lays it out, plus
//! `keptnUnmappedEvents` for events without a project and `keptnContextToProject` to find a context's project.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashSet;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Database, IndexModel};

use super::query::is_invalidation;
use super::{Error, EventQuery, EventStore, Result, UNMAPPED_EVENTS};
use crate::model::event::CloudEvent;

const BACKEND: &str = "mongodb";
/// Database used when the connection string names none.
pub const DEFAULT_DATABASE: &str = "keelson";
const CONTEXT_TO_PROJECT: &str = "keptnContextToProject";
/// Suffix of the collection holding the first event of each context of a project, as Keptn's datastore.
const ROOT_EVENTS_SUFFIX: &str = "-rootEvents";
/// Suffix of the collection holding the `triggeredid`s withdrawn by `*.invalidated` events.
const INVALIDATED_SUFFIX: &str = "-invalidatedEvents";
/// Contexts remembered as mapped and rooted before the memory is cleared (it only saves round trips).
const KNOWN_CONTEXTS_MAX: usize = 100_000;
/// How long to look for a reachable server before an operation fails.
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct MongoEventStore {
    database: Database,
    /// Collections whose indexes were created by this process; creating them again is harmless but slow.
    indexed_collections: Arc<DashSet<String>>,
    /// Contexts whose project mapping and root event this process has stored.
    known_contexts: Arc<DashSet<String>>,
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
        Ok(Self { database, indexed_collections: Default::default(), known_contexts: Default::default() })
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
        let document = to_document(event)?;
        let outcome = self
            .database
            .collection::<Document>(&collection_name)
            .update_one(doc! { "id": &event.id }, doc! { "$setOnInsert": document.clone() })
            .upsert(true)
            .await
            .map_err(unavailable)?;
        let inserted = outcome.upserted_id.is_some();
        if inserted {
            self.after_insert(&collection_name, event, &document).await?;
        }
        Ok(inserted)
    }

    /// One lookup and one `insertMany` per collection for the whole batch.
    async fn insert_many(&self, events: &[Arc<CloudEvent>]) -> Result<()> {
        let mut by_collection: HashMap<&str, Vec<&CloudEvent>> = HashMap::new();
        let mut seen = HashSet::new();
        for event in events {
            if seen.insert(event.id.as_str()) {
                by_collection.entry(event.project().unwrap_or(UNMAPPED_EVENTS)).or_default().push(event);
            }
        }
        for (collection_name, events) in by_collection {
            self.ensure_indexes(collection_name).await?;
            let collection = self.database.collection::<Document>(collection_name);
            let ids: Vec<&str> = events.iter().map(|event| event.id.as_str()).collect();
            let stored: HashSet<String> = collection
                .find(doc! { "id": { "$in": ids } })
                .projection(doc! { "_id": 0, "id": 1 })
                .await
                .map_err(unavailable)?
                .try_collect::<Vec<Document>>()
                .await
                .map_err(unavailable)?
                .into_iter()
                .filter_map(|document| document.get_str("id").ok().map(str::to_owned))
                .collect();
            let fresh: Vec<&CloudEvent> = events.into_iter().filter(|event| !stored.contains(&event.id)).collect();
            if fresh.is_empty() {
                continue;
            }
            let documents = fresh.iter().map(|event| to_document(event)).collect::<Result<Vec<_>>>()?;
            if collection.insert_many(documents.clone()).ordered(false).await.is_err() {
                // Another writer stored some of them meanwhile (the unique index refused those): fall back
                // to one idempotent upsert per event.
                for event in &fresh {
                    self.insert(event).await?;
                }
                continue;
            }
            for (event, document) in fresh.iter().zip(&documents) {
                self.after_insert(collection_name, event, document).await?;
            }
        }
        Ok(())
    }

    async fn find(&self, query: &EventQuery) -> Result<Vec<CloudEvent>> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let (collection_name, filter) = self.plan(query).await?;
        let documents: Vec<Document> = self
            .database
            .collection::<Document>(&collection_name)
            .find(filter)
            .sort(doc! { "time": -1 })
            .skip(u64::try_from(query.offset).unwrap_or(u64::MAX))
            .limit(i64::try_from(query.limit).unwrap_or(i64::MAX))
            .projection(doc! { "_id": 0 })
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)?;
        documents
            .into_iter()
            .map(|document| {
                mongodb::bson::from_document(document)
                    .map_err(|e| Error::Corrupt { key: collection_name.clone(), message: e.to_string() })
            })
            .collect()
    }

    async fn count(&self, query: &EventQuery) -> Result<u64> {
        let (collection_name, filter) = self.plan(query).await?;
        self.database.collection::<Document>(&collection_name).count_documents(filter).await.map_err(unavailable)
    }
}

impl MongoEventStore {
    /// Records what the datastore keeps beside a newly stored event: the context's project, the
    /// context's root event, and withdrawn results.
    async fn after_insert(&self, collection_name: &str, event: &CloudEvent, document: &Document) -> Result<()> {
        let context = &event.shkeptncontext;
        if !context.is_empty() && !self.known_contexts.contains(context) {
            if let Some(project) = event.project() {
                self.database
                    .collection::<Document>(CONTEXT_TO_PROJECT)
                    .update_one(doc! { "_id": context }, doc! { "$setOnInsert": { "projectName": project } })
                    .upsert(true)
                    .await
                    .map_err(unavailable)?;
            }
            self.database
                .collection::<Document>(&format!("{collection_name}{ROOT_EVENTS_SUFFIX}"))
                .update_one(doc! { "_id": context }, doc! { "$setOnInsert": document.clone() })
                .upsert(true)
                .await
                .map_err(unavailable)?;
            if self.known_contexts.len() >= KNOWN_CONTEXTS_MAX {
                self.known_contexts.clear();
            }
            self.known_contexts.insert(context.clone());
        }
        if is_invalidation(event) {
            let triggered_id = event.triggeredid.clone().unwrap_or_default();
            self.database
                .collection::<Document>(&format!("{collection_name}{INVALIDATED_SUFFIX}"))
                .update_one(doc! { "_id": &triggered_id }, doc! { "$setOnInsert": { "triggeredid": &triggered_id } })
                .upsert(true)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// The collection to read and the filter document for `query`.
    async fn plan(&self, query: &EventQuery) -> Result<(String, Document)> {
        let mut collection_name = match (query.confined_project(), query.confined_context()) {
            (Some(project), _) => project.to_owned(),
            (None, Some(context)) => {
                self.project_of_context(context).await?.unwrap_or_else(|| UNMAPPED_EVENTS.to_owned())
            }
            (None, None) => UNMAPPED_EVENTS.to_owned(),
        };
        let invalidated: Vec<String> = if query.exclude_invalidated {
            self.database
                .collection::<Document>(&format!("{collection_name}{INVALIDATED_SUFFIX}"))
                .find(doc! {})
                .await
                .map_err(unavailable)?
                .try_collect::<Vec<Document>>()
                .await
                .map_err(unavailable)?
                .into_iter()
                .filter_map(|document| document.get_str("triggeredid").ok().map(str::to_owned))
                .collect()
        } else {
            Vec::new()
        };
        if query.root_only {
            collection_name.push_str(ROOT_EVENTS_SUFFIX);
        }
        let mut filter = Document::new();
        for mut condition in query.all_conditions() {
            if condition.path == "triggeredid" {
                condition.values.retain(|value| !invalidated.contains(value));
            }
            let value = match condition.values.as_slice() {
                [single] => Bson::String(single.clone()),
                values => Bson::Document(doc! { "$in": values.to_vec() }),
            };
            filter.insert(condition.path, value);
        }
        if !invalidated.is_empty() && !filter.contains_key("triggeredid") {
            filter.insert("triggeredid", doc! { "$nin": invalidated });
        }
        let mut time = Document::new();
        if let Some(from) = &query.from_time {
            time.insert("$gt", from);
        }
        if let Some(before) = &query.before_time {
            time.insert("$lt", before);
        }
        if !time.is_empty() {
            filter.insert("time", time);
        }
        Ok((collection_name, filter))
    }
}

fn to_document(event: &CloudEvent) -> Result<Document> {
    mongodb::bson::to_document(event).map_err(|e| Error::Corrupt { key: event.id.clone(), message: e.to_string() })
}

fn unavailable(error: mongodb::error::Error) -> Error {
    Error::unavailable(BACKEND, error)
}
