//! The behaviour suite on SQLite (a temporary file, WAL mode), plus SQLite specifics.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use liftguard_store::{Backend, Store, StoreOptions};

async fn setup() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("liftguard.db").display()
    );
    let store = Store::connect(&url, StoreOptions { max_connections: 4 })
        .await
        .unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    (store, dir)
}

crate::behaviour_tests!(setup, Backend::Sqlite);

#[tokio::test]
async fn file_database_uses_wal_and_survives_reopen() {
    let (store, dir) = setup().await;
    store.migrate().await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.sqlite_pool().unwrap())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    store.create_gym("persisted", "P").await.unwrap();
    store.close().await;
    let url = format!("sqlite://{}", dir.path().join("liftguard.db").display());
    let again = Store::connect(&url, StoreOptions::default()).await.unwrap();
    assert_eq!(again.migrate().await.unwrap(), Backend::Sqlite);
    assert_eq!(again.list_gyms().await.unwrap().len(), 1);
}

#[tokio::test]
async fn in_memory_database_keeps_its_data() {
    let store = Store::connect("sqlite::memory:", StoreOptions { max_connections: 8 })
        .await
        .unwrap();
    store.migrate().await.unwrap();
    common::upserts_are_idempotent(&store).await;
}

#[tokio::test]
async fn unknown_scheme_is_invalid_argument() {
    let err = Store::connect("mysql://localhost/x", StoreOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), liftguard_model::ErrorKind::InvalidArgument);
}
