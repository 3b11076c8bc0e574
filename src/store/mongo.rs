//! MongoDB backend of [`EventStore`]: one collection per project, as Keptn's datastore lays it out, plus
//! `keptnUnmappedEvents` for events without a project and `keptnContextToProject` to find a context's project.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashSet;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::{ErrorKind, InsertManyError};
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
/// MongoDB's duplicate key error code.
const DUPLICATE_KEY: i32 = 11000;
/// Contexts remembered as mapped and rooted before the memory is cleared (it only saves round trips).
const KNOWN_CONTEXTS_MAX: usize = 100_000;
/// How long to look for a reachable server before an operation fails.
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// The database `url` names (else `default_name`), with Keelson's timeouts; not contacted yet.
pub async fn database(url: &str, default_name: &str) -> mongodb::error::Result<Database> {
    let mut options = ClientOptions::parse(url).await?;
    options.server_selection_timeout = Some(SERVER_SELECTION_TIMEOUT);
    options.connect_timeout = Some(SERVER_SELECTION_TIMEOUT);
    options.app_name = Some("keelson".to_owned());
    let name = options.default_database.clone().unwrap_or_else(|| default_name.to_owned());
    Ok(Client::with_options(options)?.database(&name))
}

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
        let database = database(url, DEFAULT_DATABASE).await.map_err(|e| Error::unavailable(BACKEND, e))?;
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
        let side = self.side_documents(&[(event, &document)]);
        let outcome = self
            .database
            .collection::<Document>(&collection_name)
            .update_one(doc! { "id": &event.id }, doc! { "$setOnInsert": document })
            .upsert(true)
            .await
            .map_err(unavailable)?;
        let inserted = outcome.upserted_id.is_some();
        if inserted {
            self.store_side_documents(&collection_name, side).await?;
        }
        Ok(inserted)
    }

    /// One unordered `insertMany` per collection (plus one per side collection) for the whole batch.
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
            let documents = events.iter().map(|event| to_document(event)).collect::<Result<Vec<_>>>()?;
            let pairs: Vec<(&CloudEvent, &Document)> = events.iter().copied().zip(&documents).collect();
            let side = self.side_documents(&pairs);
            // The unique index on `id` refuses events stored already (a retried batch, a republished outbox).
            self.insert_new(collection_name, documents).await?;
            self.store_side_documents(collection_name, side).await?;
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
    /// What the datastore keeps beside the given events: each new context's project and root (first)
    /// event, and withdrawn results.
    fn side_documents(&self, events: &[(&CloudEvent, &Document)]) -> SideDocuments {
        let mut mappings = Vec::new();
        let mut roots = Vec::new();
        let mut invalidated = Vec::new();
        let mut new_contexts = HashSet::new();
        for (event, document) in events {
            let context = &event.shkeptncontext;
            if !context.is_empty() && !self.known_contexts.contains(context) && new_contexts.insert(context.clone()) {
                if let Some(project) = event.project() {
                    mappings.push(doc! { "_id": context, "projectName": project });
                }
                let mut root = (*document).clone();
                root.insert("_id", context);
                roots.push(root);
            }
            if is_invalidation(event) {
                let triggered_id = event.triggeredid.clone().unwrap_or_default();
                invalidated.push(doc! { "_id": &triggered_id, "triggeredid": &triggered_id });
            }
        }
        SideDocuments { mappings, roots, invalidated, new_contexts }
    }

    /// Stores [`SideDocuments`]: one `insertMany` per side collection; entries stored already are left
    /// as they are.
    async fn store_side_documents(&self, collection_name: &str, side: SideDocuments) -> Result<()> {
        let SideDocuments { mappings, roots, invalidated, new_contexts } = side;
        self.insert_new(CONTEXT_TO_PROJECT, mappings).await?;
        self.insert_new(&format!("{collection_name}{ROOT_EVENTS_SUFFIX}"), roots).await?;
        self.insert_new(&format!("{collection_name}{INVALIDATED_SUFFIX}"), invalidated).await?;
        if self.known_contexts.len() + new_contexts.len() > KNOWN_CONTEXTS_MAX {
            self.known_contexts.clear();
        }
        for context in new_contexts {
            self.known_contexts.insert(context);
        }
        Ok(())
    }

    /// Inserts `documents`, skipping those whose key is stored already (duplicate key errors).
    async fn insert_new(&self, collection_name: &str, documents: Vec<Document>) -> Result<()> {
        if documents.is_empty() {
            return Ok(());
        }
        match self.database.collection::<Document>(collection_name).insert_many(documents).ordered(false).await {
            Ok(_) => Ok(()),
            Err(error) if only_duplicates(&error) => Ok(()),
            Err(error) => Err(unavailable(error)),
        }
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

/// Documents for the side collections, computed from a batch before it is inserted.
struct SideDocuments {
    mappings: Vec<Document>,
    roots: Vec<Document>,
    invalidated: Vec<Document>,
    new_contexts: HashSet<String>,
}

fn to_document(event: &CloudEvent) -> Result<Document> {
    mongodb::bson::to_document(event).map_err(|e| Error::Corrupt { key: event.id.clone(), message: e.to_string() })
}

/// Whether every failure of an unordered `insertMany` is a duplicate key (code 11000).
fn only_duplicates(error: &mongodb::error::Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::InsertMany(InsertManyError { write_errors: Some(errors), write_concern_error: None, .. }) => {
            errors.iter().all(|error| error.code == DUPLICATE_KEY)
        }
        _ => false,
    }
}

fn unavailable(error: mongodb::error::Error) -> Error {
    Error::unavailable(BACKEND, error)
}
