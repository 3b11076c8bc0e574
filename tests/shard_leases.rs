//! Shard leases and fenced writes on a real Redis: one holder per shard, epochs that only grow, leases
//! that expire and can be lost, and writes that a holder which lost its shard cannot make durable.

mod support;

use std::time::Duration;

use keelson::store::redis::{Acquired, RedisSnapshotStore};
use keelson::store::{FencedGroup, SnapshotStore};
use support::servers;

const TTL: Duration = Duration::from_secs(1);

#[tokio::test]
async fn one_holder_per_shard_with_growing_epochs() {
    let redis = servers::redis();
    let store = RedisSnapshotStore::connect(&redis.url).await.unwrap();

    let Acquired::Granted { epoch: first } = store.acquire_shard(7, "n1", TTL).await.unwrap() else {
        panic!("a free shard is granted")
    };
    let held = RedisSnapshotStore::lease_value("n1", first);
    assert_eq!(store.acquire_shard(7, "n2", TTL).await.unwrap(), Acquired::Held { by: held.clone() });
    assert!(
        matches!(store.acquire_shard(8, "n2", TTL).await.unwrap(), Acquired::Granted { .. }),
        "shards are independent"
    );

    // Renewing keeps it past its first TTL.
    for _ in 0..4 {
        tokio::time::sleep(TTL / 4).await;
        assert!(store.renew_shards(&[(7, held.clone())], TTL).await.unwrap().is_empty());
    }
    assert!(matches!(store.acquire_shard(7, "n2", TTL).await.unwrap(), Acquired::Held { .. }));

    // Not renewed, it expires; the next holder gets a higher epoch and the old one learns it lost it.
    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    let Acquired::Granted { epoch: second } = store.acquire_shard(7, "n2", TTL).await.unwrap() else {
        panic!("an expired lease is free")
    };
    assert!(second > first, "epochs grow: {first} then {second}");
    let Acquired::Granted { epoch: nine } = store.acquire_shard(9, "n1", TTL).await.unwrap() else { panic!() };
    let renewed = vec![(7, held.clone()), (9, RedisSnapshotStore::lease_value("n1", nine))];
    assert_eq!(store.renew_shards(&renewed, TTL).await.unwrap(), vec![7], "only the lost lease is reported");

    // Releasing is compare-and-delete: the old holder cannot release the new holder's lease.
    assert!(!store.release_shard(7, &held).await.unwrap());
    assert!(store.release_shard(7, &RedisSnapshotStore::lease_value("n2", second)).await.unwrap());
    let Acquired::Granted { epoch: third } = store.acquire_shard(7, "n1", TTL).await.unwrap() else {
        panic!("a released lease is free")
    };
    assert_eq!(third, second + 1);
}

#[tokio::test]
async fn a_holder_that_lost_its_shard_cannot_write() {
    let redis = servers::redis();
    let store = RedisSnapshotStore::connect(&redis.url).await.unwrap();
    let Acquired::Granted { epoch: old } = store.acquire_shard(3, "n1", TTL).await.unwrap() else { panic!() };
    let writes =
        vec![("execution/p/1".to_owned(), Some(b"one".to_vec())), ("execution/p/2".to_owned(), Some(b"two".to_vec()))];
    assert!(store.write_fenced_group(FencedGroup { shard: 3, epoch: old, writes }).await.unwrap());
    assert_eq!(store.get("execution/p/1").await.unwrap().as_deref(), Some(&b"one"[..]));

    // Another instance takes the shard (the old lease expired while its holder was paused).
    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    let Acquired::Granted { epoch: new } = store.acquire_shard(3, "n2", TTL).await.unwrap() else { panic!() };

    // The old holder's late batch changes nothing, neither sets nor deletes.
    let late = vec![("execution/p/1".to_owned(), Some(b"stale".to_vec())), ("execution/p/2".to_owned(), None)];
    assert!(
        !store.write_fenced_group(FencedGroup { shard: 3, epoch: old, writes: late }).await.unwrap(),
        "refused by the fence"
    );
    assert_eq!(store.get("execution/p/1").await.unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(store.get("execution/p/2").await.unwrap().as_deref(), Some(&b"two"[..]));

    // The new holder writes and deletes under its epoch.
    let current = vec![("execution/p/1".to_owned(), Some(b"new".to_vec())), ("execution/p/2".to_owned(), None)];
    assert!(store.write_fenced_group(FencedGroup { shard: 3, epoch: new, writes: current }).await.unwrap());
    assert_eq!(store.get("execution/p/1").await.unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(store.get("execution/p/2").await.unwrap(), None);
    // A shard that was never acquired has no epoch to match.
    assert!(!store
        .write_fenced_group(FencedGroup {
            shard: 4,
            epoch: 1,
            writes: vec![("execution/q/1".to_owned(), Some(b"x".to_vec()))]
        })
        .await
        .unwrap());
    assert_eq!(store.get("execution/q/1").await.unwrap(), None);

    // One pipeline with a valid and a stale group applies only the valid one, and names the stale one.
    let refused = store
        .write_fenced(
            vec![("project/open".to_owned(), Some(b"shared".to_vec()))],
            vec![
                FencedGroup { shard: 3, epoch: old, writes: vec![("execution/p/3".to_owned(), Some(b"old".to_vec()))] },
                FencedGroup { shard: 3, epoch: new, writes: vec![("execution/p/4".to_owned(), Some(b"new".to_vec()))] },
            ],
        )
        .await
        .unwrap();
    assert_eq!(refused, vec![(3, old)]);
    assert_eq!(store.get("execution/p/3").await.unwrap(), None);
    assert_eq!(store.get("execution/p/4").await.unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(store.get("project/open").await.unwrap().as_deref(), Some(&b"shared"[..]));
}
