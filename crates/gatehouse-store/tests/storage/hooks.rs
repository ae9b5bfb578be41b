//! Hooks: one per trigger and pool, replaced by the next setting (which keeps the first
//! creation time), listed without their bytes, deleted once, and gone with their pool's
//! transaction when it rolls back.

use gatehouse_domain::hooks::{Hook, HookRuntime, HookStore, Trigger, WasmKind};
use gatehouse_domain::store::Store;
use gatehouse_domain::time::Timestamp;

use crate::fixtures::*;

fn wasm_hook(pool: gatehouse_domain::ids::PoolId, trigger: Trigger, at: Timestamp) -> Hook {
    Hook {
        pool,
        trigger,
        runtime: HookRuntime::Wasm {
            kind: WasmKind::CoreModule,
            sha256: "ab".repeat(32),
            wasm: vec![0, 97, 115, 109, 1, 0, 0, 0],
            compatibility: "c0ffee".into(),
            sealed_artifact: vec![9; 1000],
        },
        created_at: at,
        updated_at: at,
    }
}

pub async fn hooks_are_kept_per_pool_and_trigger(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let other = new_pool(store, "other").await;
    let define = wasm_hook(pool.id, Trigger::DefineAuthChallenge, T0);
    let webhook = Hook {
        pool: pool.id,
        trigger: Trigger::PreTokenGeneration,
        runtime: HookRuntime::Webhook {
            url: "https://hooks.example/pre-token".into(),
            sealed_secret: vec![1, 2, 3],
        },
        created_at: T0,
        updated_at: T0,
    };
    let mut w = store.write(pool.id).await.unwrap();
    w.put_hook(&define).await.unwrap();
    w.put_hook(&webhook).await.unwrap();
    w.commit().await.unwrap();
    // Another pool's transaction cannot write this pool's hooks.
    let mut w = store.write(other.id).await.unwrap();
    assert!(w.put_hook(&define).await.is_err());
    drop(w);

    assert_eq!(
        store
            .hook(pool.id, Trigger::DefineAuthChallenge)
            .await
            .unwrap(),
        Some(define.clone())
    );
    assert_eq!(
        store
            .hook(pool.id, Trigger::PreTokenGeneration)
            .await
            .unwrap(),
        Some(webhook)
    );
    assert_eq!(
        store
            .hook(other.id, Trigger::DefineAuthChallenge)
            .await
            .unwrap(),
        None
    );
    let listed = store.hook_summaries(pool.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].trigger, Trigger::DefineAuthChallenge);
    assert_eq!(listed[0].runtime, "wasm");
    assert_eq!(listed[0].size, Some(8));
    assert_eq!(listed[0].sha256.as_deref(), Some("ab".repeat(32).as_str()));
    assert_eq!(listed[1].runtime, "webhook");
    assert_eq!(
        listed[1].url.as_deref(),
        Some("https://hooks.example/pre-token")
    );
    assert_eq!(listed[1].size, None);
    assert!(store.hook_summaries(other.id).await.unwrap().is_empty());

    // Setting a trigger again replaces its hook and keeps when it was first set.
    let later = Timestamp(T0.as_secs() + 60);
    let mut replaced = wasm_hook(pool.id, Trigger::DefineAuthChallenge, later);
    if let HookRuntime::Wasm { sha256, .. } = &mut replaced.runtime {
        *sha256 = "cd".repeat(32);
    }
    let mut w = store.write(pool.id).await.unwrap();
    w.put_hook(&replaced).await.unwrap();
    w.commit().await.unwrap();
    let got = store
        .hook(pool.id, Trigger::DefineAuthChallenge)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.created_at, T0);
    assert_eq!(got.updated_at, later);
    assert_eq!(got.runtime, replaced.runtime);

    // A rolled-back delete deletes nothing; a committed one deletes once.
    let mut w = store.write(pool.id).await.unwrap();
    assert!(w.delete_hook(Trigger::DefineAuthChallenge).await.unwrap());
    drop(w);
    assert!(
        store
            .hook(pool.id, Trigger::DefineAuthChallenge)
            .await
            .unwrap()
            .is_some()
    );
    let mut w = store.write(pool.id).await.unwrap();
    assert!(w.delete_hook(Trigger::DefineAuthChallenge).await.unwrap());
    assert!(!w.delete_hook(Trigger::DefineAuthChallenge).await.unwrap());
    w.commit().await.unwrap();
    assert_eq!(store.hook_summaries(pool.id).await.unwrap().len(), 1);
}
