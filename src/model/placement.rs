//! Where a project lives in a cluster: its shard (a fixed hash of its name) and the shard's desired
//! owner among the live instances (rendezvous hashing). Pure and frozen by golden values: every
//! instance must compute the same answers, across releases.

/// FNV-1a, 32 bit.
const FNV32_OFFSET: u32 = 2_166_136_261;
const FNV32_PRIME: u32 = 16_777_619;
/// FNV-1a, 64 bit, for rendezvous scores.
const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV64_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a (32 bit) of `bytes`.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(FNV32_OFFSET, |hash, byte| (hash ^ u32::from(*byte)).wrapping_mul(FNV32_PRIME))
}

/// The shard of `project`: `fnv1a32(utf-8 name) % shards`. Everything a project touches (slots,
/// chaining, pause flags, git) lives in its one shard.
pub fn shard_of(project: &str, shards: u32) -> u32 {
    assert!(shards > 0, "a cluster has at least one shard");
    fnv1a32(project.as_bytes()) % shards
}

/// How strongly `node` wants `shard`: FNV-1a (64 bit) of the node id, mixed with the shard number
/// (SplitMix64's finaliser, so that neighbouring shards do not rank nodes alike).
fn score(node: &str, shard: u32) -> u64 {
    let node_hash = node.bytes().fold(FNV64_OFFSET, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(FNV64_PRIME));
    let mut mixed = node_hash ^ u64::from(shard).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    mixed ^ (mixed >> 31)
}

/// The member that should own `shard`: the highest score (ties broken by node id), whatever order the
/// members are listed in. A member joining or leaving moves only the shards it wins or held.
pub fn desired_owner<'a>(shard: u32, members: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    members.into_iter().max_by(|a, b| (score(a, shard), *a).cmp(&(score(b, shard), *b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_fnv1a_32_of_the_name() {
        // Published FNV-1a test vectors, then Keelson's golden values.
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
        let golden = [("sockshop", 257_669_945, 57), ("podtato-head", 648_930_431, 63), ("keptn", 136_518_549, 21)];
        for (project, hash, shard) in golden {
            assert_eq!(fnv1a32(project.as_bytes()), hash, "{project}");
            assert_eq!(shard_of(project, 64), shard, "{project}");
        }
        assert_eq!(shard_of("sockshop", 1), 0);
        assert_eq!(shard_of("sockshop", 256), 257_669_945 % 256);
    }

    #[test]
    fn owners_are_spread_and_move_only_when_they_must() {
        let three = ["n1", "n2", "n3"];
        let owners: Vec<&str> = (0..64).map(|shard| desired_owner(shard, three).unwrap()).collect();
        for node in three {
            let owned = owners.iter().filter(|owner| **owner == node).count();
            assert!((10..=34).contains(&owned), "{node} owns {owned} of 64");
        }
        // The order members are listed in changes nothing.
        for shard in 0..64 {
            assert_eq!(desired_owner(shard, ["n3", "n1", "n2"]), Some(owners[shard as usize]));
        }
        // A leaving member's shards move; no other shard does.
        for shard in 0..64u32 {
            let after = desired_owner(shard, ["n1", "n3"]).unwrap();
            if owners[shard as usize] == "n2" {
                assert_ne!(after, "n2");
            } else {
                assert_eq!(after, owners[shard as usize], "shard {shard} moved needlessly");
            }
        }
        // A joining member only takes shards, about a quarter of them.
        let joined: Vec<&str> = (0..64).map(|shard| desired_owner(shard, ["n1", "n2", "n3", "n4"]).unwrap()).collect();
        let moved = joined.iter().zip(&owners).filter(|(after, before)| after != before).count();
        assert!(joined.iter().zip(&owners).all(|(after, before)| after == before || *after == "n4"));
        assert!((6..=28).contains(&moved), "{moved} of 64 moved to the new member");
        assert_eq!(desired_owner(0, []), None);
    }
}
