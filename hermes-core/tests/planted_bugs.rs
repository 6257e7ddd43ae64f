//! Proof that the tests can fail: known bugs planted in the replica must be caught by the
//! simulator (invariants or linearizability) within a bounded number of seeds.

use hermes_core::sim::{FailureKind, OpMix, SimConfig, Simulation};
use hermes_core::{Durability, PlantedBug};

/// Runs seeds of `make(seed)` until one fails; returns the failing seed and its kind.
fn first_failure(
    seeds: u64,
    make: impl Fn(u64) -> SimConfig,
) -> Option<(u64, FailureKind, String)> {
    (1..=seeds).find_map(|seed| {
        Simulation::new(make(seed))
            .run()
            .err()
            .map(|failure| (seed, failure.kind.clone(), failure.to_string()))
    })
}

#[test]
fn serving_reads_in_invalid_is_caught() {
    let found = first_failure(50, |seed| {
        SimConfig::from_seed(seed).with_bug(PlantedBug::ReadInInvalid)
    });
    let (seed, kind, text) = found.expect("reads of Invalid keys went unnoticed for 50 seeds");
    assert!(
        matches!(kind, FailureKind::Linearizability | FailureKind::Invariant),
        "seed {seed}: {text}"
    );
    assert!(text.contains("replay with"), "{text}");
}

/// The lost update of the original RMW specification: an RMW coordinator that keeps an ACK
/// gathered before a view change commits together with a concurrent RMW replayed after it.
/// It needs RMW contention at the moment a node crashes, so the seeds use a CAS-heavy mix on one
/// key with a crash in every run.
#[test]
fn keeping_acks_across_epochs_is_caught() {
    let found = first_failure(6_000, |seed| {
        let mut config = SimConfig::from_seed(seed).with_bug(PlantedBug::KeepAcksAcrossEpochs);
        config.nodes = 3;
        config.keys = 1;
        config.clients_per_node = 3;
        config.faults = 1;
        config.partitions = false;
        config.crash_mid_broadcast = true;
        // Ties between equal versions go to the higher id: the crashing RMW must be the winner.
        config.first_victim = Some(3);
        // The view change must come before a replay resolves the race.
        config.replica.message_loss_timeout_ms = 5_000;
        config.replica.request_timeout_ms = 20_000;
        config.loss = 0.0;
        config.duplicate = 0.0;
        config.mix = OpMix {
            read: 20,
            write: 0,
            delete: 0,
            cas: 80,
        };
        config
    });
    let (seed, kind, text) = found.expect("ACKs kept across epochs went unnoticed for 6000 seeds");
    assert!(
        matches!(kind, FailureKind::Linearizability | FailureKind::Invariant),
        "seed {seed}: {text}"
    );
    eprintln!("caught at seed {seed}: {text}");
}

/// A view that removes a node installed before that node's lease has run out lets the removed
/// node serve stale reads.
#[test]
fn installing_a_view_before_leases_expire_is_caught() {
    let found = first_failure(400, |seed| {
        let mut config = SimConfig::from_seed(seed).with_bug(PlantedBug::SkipLeaseWait);
        // Read-mostly, so that an isolated node holds Valid keys to serve stale.
        config.faults = 3;
        config.keys = 4;
        config.mix = OpMix {
            read: 90,
            write: 10,
            delete: 0,
            cas: 0,
        };
        config
    });
    let (seed, kind, text) = found.expect("skipping the lease wait went unnoticed for 400 seeds");
    assert!(
        matches!(kind, FailureKind::Linearizability | FailureKind::Invariant),
        "seed {seed}: {text}"
    );
    eprintln!("caught at seed {seed}: {text}");
}

/// A view change accepted by a single acceptor lets both sides of a partition move on.
#[test]
fn a_view_change_accepted_by_a_minority_is_caught() {
    let found = first_failure(400, |seed| {
        let mut config = SimConfig::from_seed(seed).with_bug(PlantedBug::MinorityViews);
        config.faults = 3;
        config
    });
    let (seed, kind, text) = found.expect("minority view changes went unnoticed for 400 seeds");
    assert!(
        matches!(kind, FailureKind::Linearizability | FailureKind::Invariant),
        "seed {seed}: {text}"
    );
    eprintln!("caught at seed {seed}: {text}");
}

/// Under `sync` durability, ACKs and commits that do not wait for the disk lose acknowledged
/// writes when every node crashes at once.
#[test]
fn acking_before_the_record_is_durable_is_caught() {
    let found = first_failure(400, |seed| {
        let mut config = SimConfig::from_seed(seed)
            .with_durability(Durability::Sync)
            .with_bug(PlantedBug::AckBeforeDurable);
        // A slow disk, so that a total crash finds acknowledged writes not yet durable.
        config.persist_delay_us_max = 50_000;
        config
    });
    let (seed, kind, text) = found.expect("ACKs before durability went unnoticed for 400 seeds");
    assert!(
        matches!(kind, FailureKind::Linearizability | FailureKind::Invariant),
        "seed {seed}: {text}"
    );
    eprintln!("caught at seed {seed}: {text}");
}
