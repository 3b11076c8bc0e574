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

/// A member of the cluster as the placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub node: String,
    /// False once it announced it is leaving: it takes no shards and hands its own off.
    pub active: bool,
    /// When it joined, on the shared clock (ms).
    pub since_ms: u64,
}

/// What this instance knows about one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// No live lease; unowned since this time (ms on the shared clock).
    Nobody { since_ms: u64 },
    /// This instance holds it; `handing_off` while it drains for another owner.
    Me { handing_off: bool },
    /// Another instance holds the lease.
    Other(String),
}

/// Placement rules shared by every instance.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// A member takes shards only once it has been a member this long.
    pub join_grace_ms: u64,
    /// A shard unowned this long is taken by any member, not only its desired owner (liveness).
    pub orphan_grace_ms: u64,
    /// Most shards in handoff at once.
    pub max_moves: usize,
}

/// What this instance should do now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub acquire: Vec<u32>,
    pub hand_off: Vec<u32>,
}

/// The members shards are placed on: active members past their join grace, and those that joined
/// within the grace of the oldest (instances started together form the cluster at once, without
/// first handing shards to whichever was up a moment earlier).
pub fn eligible(members: &[Member], now_ms: u64, rules: &Rules) -> Vec<String> {
    let active = || members.iter().filter(|member| member.active);
    let Some(oldest) = active().map(|member| member.since_ms).min() else { return Vec::new() };
    active()
        .filter(|member| {
            now_ms.saturating_sub(member.since_ms) >= rules.join_grace_ms
                || member.since_ms.saturating_sub(oldest) < rules.join_grace_ms
        })
        .map(|member| member.node.clone())
        .collect()
}

/// Decides which shards `me` acquires and which it hands off, from one view of the cluster. The
/// lease in Redis decides ownership; this only proposes: two instances acquiring the same shard is
/// harmless (one wins).
pub fn plan(me: &str, members: &[Member], shards: &[Holder], now_ms: u64, rules: &Rules) -> Plan {
    let eligible = eligible(members, now_ms, rules);
    let me_active = members.iter().any(|member| member.node == me && member.active);
    let mut plan = Plan::default();
    if !me_active {
        return plan;
    }
    let mut moving = shards.iter().filter(|holder| matches!(holder, Holder::Me { handing_off: true })).count();
    for (shard, holder) in (0u32..).zip(shards) {
        let desired = desired_owner(shard, eligible.iter().map(String::as_str));
        match holder {
            Holder::Nobody { since_ms } => {
                let orphaned_long = now_ms.saturating_sub(*since_ms) >= rules.orphan_grace_ms;
                if desired == Some(me) || orphaned_long {
                    plan.acquire.push(shard);
                }
            }
            Holder::Me { handing_off: false } => {
                if desired.is_some_and(|desired| desired != me) && moving < rules.max_moves {
                    moving += 1;
                    plan.hand_off.push(shard);
                }
            }
            Holder::Me { handing_off: true } | Holder::Other(_) => {}
        }
    }
    plan
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

    fn member(node: &str, since_ms: u64) -> Member {
        Member { node: node.to_owned(), active: true, since_ms }
    }

    const RULES: Rules = Rules { join_grace_ms: 2_000, orphan_grace_ms: 2_000, max_moves: 8 };

    #[test]
    fn a_starting_cluster_spreads_at_once_and_each_takes_its_own() {
        // Started over 1.5 s: they still form the cluster together, even once the first is settled.
        let members = [member("n1", 1_000), member("n2", 1_800), member("n3", 2_500)];
        assert_eq!(eligible(&members, 3_200, &RULES).len(), 3);
        let shards = vec![Holder::Nobody { since_ms: 2_500 }; 64];
        let mut taken = Vec::new();
        for node in ["n1", "n2", "n3"] {
            let plan = plan(node, &members, &shards, 3_200, &RULES);
            assert!(plan.hand_off.is_empty());
            assert!(plan.acquire.len() >= 10, "{node} takes its share: {:?}", plan.acquire);
            taken.extend(plan.acquire);
        }
        taken.sort_unstable();
        assert_eq!(taken, (0..64).collect::<Vec<_>>(), "every shard exactly once");
    }

    #[test]
    fn orphans_of_a_wedged_owner_are_taken_by_anyone_after_the_grace() {
        let members = [member("n1", 0), member("n2", 0)];
        let n2s: Vec<u32> = (0..64).filter(|s| desired_owner(*s, ["n1", "n2"]) == Some("n2")).collect();
        let shards: Vec<Holder> =
            (0..64)
                .map(|s| {
                    if n2s.contains(&s) {
                        Holder::Nobody { since_ms: 10_000 }
                    } else {
                        Holder::Me { handing_off: false }
                    }
                })
                .collect();
        assert!(plan("n1", &members, &shards, 11_000, &RULES).acquire.is_empty(), "n2 gets its chance first");
        assert_eq!(plan("n1", &members, &shards, 12_000, &RULES).acquire, n2s);
    }

    #[test]
    fn a_joining_member_receives_its_share_after_the_grace_a_few_at_a_time() {
        let old = [member("n1", 0), member("n2", 0), member("n3", 0)];
        let mut members = old.to_vec();
        members.push(member("n4", 50_000));
        let held_by = |node: &str| -> Vec<Holder> {
            (0..64)
                .map(|s| match desired_owner(s, ["n1", "n2", "n3"]) {
                    Some(owner) if owner == node => Holder::Me { handing_off: false },
                    Some(owner) => Holder::Other(owner.to_owned()),
                    None => unreachable!(),
                })
                .collect()
        };
        // Within the grace nothing moves.
        assert_eq!(plan("n1", &members, &held_by("n1"), 51_000, &RULES), Plan::default());
        let mut moved = 0;
        for node in ["n1", "n2", "n3"] {
            let plan = plan(node, &members, &held_by(node), 53_000, &RULES);
            assert!(plan.acquire.is_empty());
            for shard in &plan.hand_off {
                assert_eq!(desired_owner(*shard, ["n1", "n2", "n3", "n4"]), Some("n4"), "only n4's shards move");
            }
            assert!(plan.hand_off.len() <= RULES.max_moves);
            moved += plan.hand_off.len();
        }
        assert!((8..=24).contains(&moved), "about a quarter move: {moved}");
        // Shards already in handoff count against the limit.
        let mut busy = held_by("n1");
        let mut marked = 0;
        for holder in busy.iter_mut() {
            if *holder == (Holder::Me { handing_off: false }) && marked < RULES.max_moves {
                *holder = Holder::Me { handing_off: true };
                marked += 1;
            }
        }
        assert!(plan("n1", &members, &busy, 53_000, &RULES).hand_off.is_empty());
    }

    #[test]
    fn a_leaving_member_takes_nothing_and_is_not_placed_on() {
        let members = [member("n1", 0), Member { node: "n2".into(), active: false, since_ms: 0 }, member("n3", 0)];
        assert_eq!(eligible(&members, 10_000, &RULES), vec!["n1".to_owned(), "n3".to_owned()]);
        let shards = vec![Holder::Nobody { since_ms: 0 }; 64];
        assert_eq!(plan("n2", &members, &shards, 10_000, &RULES), Plan::default());
        let n1 = plan("n1", &members, &shards, 10_000, &RULES);
        assert_eq!(n1.acquire.len(), 64, "orphaned long enough: n1 takes all it sees as orphans");
    }
}
