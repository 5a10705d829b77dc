//! The journal entries an execution replays, consumed as its steps reach them.
//!
//! Entries are held in step-id order (as a store reads them), which answers lookups by id
//! and by scope with a binary search, and walked in journal order (`seq`) by a cursor: a
//! replaying step almost always asks for the entry journaled next, and finds it without a
//! search or a hash. A hash map cost a long journal's resume a hash, an insertion and a
//! removal per step.

use std::collections::HashMap;

use crate::model::step::{StepKind, StepRecord, in_step_id_order, scope_of};

/// The journal entries of one execution, each ahead of the run until replayed or dropped.
pub(super) struct Replay {
    /// Every entry, in step-id order.
    entries: Vec<Entry>,
    /// Indices into `entries`, in journal order.
    journal_order: Vec<usize>,
    /// Position in `journal_order` of the first entry still ahead (its end when none is):
    /// no entry before it is ahead.
    cursor: usize,
}

struct Entry {
    id: String,
    /// The entry's `seq`, kept once its record is taken: it orders the scope's replay.
    seq: u64,
    state: State,
}

enum State {
    /// Not reached yet.
    Ahead(StepRecord),
    /// Taken by the step that reached it.
    Replayed,
    /// Dropped unreached: a step of a nested orchestration that replayed as its output.
    Dropped,
}

impl Replay {
    /// The entries of a journal (every step id once, in step-id order, as
    /// [`Store::load_journal`](crate::store::Store::load_journal) promises). Steps a rewind
    /// set aside are left out: they run again.
    pub(super) fn new(mut journal: Vec<(String, StepRecord)>) -> Replay {
        // A store that broke the promise must not make a journaled step run again (a lookup
        // by id that missed would execute it): its journal is put in order here, as a store
        // would have.
        if !journal.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            journal = in_step_id_order(journal);
        }
        let entries: Vec<Entry> = journal
            .into_iter()
            .filter(|(_, record)| record.kind != StepKind::Rewound)
            .map(|(id, record)| Entry {
                id,
                seq: record.seq,
                state: State::Ahead(record),
            })
            .collect();
        let mut journal_order: Vec<usize> = (0..entries.len()).collect();
        journal_order.sort_unstable_by_key(|&index| entries[index].seq);
        Replay {
            entries,
            journal_order,
            cursor: 0,
        }
    }

    /// The entry of `step_id`, if it is still ahead; it is then replayed.
    pub(super) fn take(&mut self, step_id: &str) -> Option<StepRecord> {
        let index = match self.journal_order.get(self.cursor) {
            Some(&next) if self.entries[next].id == step_id => next,
            _ => self
                .entries
                .binary_search_by(|entry| entry.id.as_str().cmp(step_id))
                .ok()?,
        };
        let state = &mut self.entries[index].state;
        if !matches!(state, State::Ahead(_)) {
            return None;
        }
        let State::Ahead(record) = std::mem::replace(state, State::Replayed) else {
            unreachable!("the entry was just seen ahead")
        };
        self.advance();
        Some(record)
    }

    /// Drops the entries under `prefix` still ahead.
    pub(super) fn drop_under(&mut self, prefix: &str) {
        let range = self.under(prefix);
        for entry in &mut self.entries[range] {
            if matches!(entry.state, State::Ahead(_)) {
                entry.state = State::Dropped;
            }
        }
        self.advance();
    }

    /// The entries under `prefix` still ahead of the run, in step-id order, with the
    /// highest `seq` replayed in each one's scope (none when nothing of it replayed, and for
    /// every entry when none of them is a waiting entry, the only kind it matters to).
    pub(super) fn ahead_under(&self, prefix: &str) -> Vec<(&str, &StepRecord, Option<u64>)> {
        if self.cursor == self.journal_order.len() {
            return Vec::new(); // nothing is ahead
        }
        let entries = &self.entries[self.under(prefix)];
        let ahead: Vec<(&str, &StepRecord)> = entries
            .iter()
            .filter_map(|entry| match &entry.state {
                State::Ahead(record) => Some((entry.id.as_str(), record)),
                State::Replayed | State::Dropped => None,
            })
            .collect();
        // Only a waiting entry's standing depends on what replayed beside it: without one,
        // the scan is skipped. Every scope of an entry under `prefix` is under it too.
        let mut replayed: HashMap<&str, u64> = HashMap::new();
        if ahead.iter().any(|(_, record)| record.finished_at.is_none()) {
            for entry in entries {
                if matches!(entry.state, State::Replayed) {
                    let highest = replayed.entry(scope_of(&entry.id)).or_insert(entry.seq);
                    *highest = (*highest).max(entry.seq);
                }
            }
        }
        ahead
            .into_iter()
            .map(|(id, record)| (id, record, replayed.get(scope_of(id)).copied()))
            .collect()
    }

    /// The range of `entries` whose ids start with `prefix`.
    fn under(&self, prefix: &str) -> std::ops::Range<usize> {
        let start = self.entries.partition_point(|entry| entry.id.as_str() < prefix);
        let len = self.entries[start..].partition_point(|entry| entry.id.starts_with(prefix));
        start..start + len
    }

    /// Moves the cursor past the entries no longer ahead.
    fn advance(&mut self) {
        while let Some(&next) = self.journal_order.get(self.cursor) {
            if matches!(self.entries[next].state, State::Ahead(_)) {
                break;
            }
            self.cursor += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn step(seq: u64) -> StepRecord {
        crate::store::contract::records::step(seq, json!(seq))
    }

    fn journal(ids: &[(&str, u64)]) -> Vec<(String, StepRecord)> {
        let mut journal: Vec<_> = ids.iter().map(|(id, seq)| (id.to_string(), step(*seq))).collect();
        journal.sort_by(|a, b| a.0.cmp(&b.0));
        journal
    }

    #[test]
    fn takes_in_journal_order_and_out_of_it() {
        let mut replay = Replay::new(journal(&[("a#0", 0), ("a#1", 1), ("b#0", 2), ("a#10", 3)]));
        assert_eq!(replay.take("a#0").map(|r| r.seq), Some(0));
        // Out of journal order (a parallel branch finished first): found by id.
        assert_eq!(replay.take("b#0").map(|r| r.seq), Some(2));
        assert_eq!(replay.take("a#1").map(|r| r.seq), Some(1));
        assert_eq!(replay.take("a#1"), None, "an entry replays once");
        assert_eq!(replay.take("a#2"), None, "a step not journaled executes");
        assert_eq!(replay.take("a#10").map(|r| r.seq), Some(3));
        assert!(replay.ahead_under("").is_empty());
    }

    #[test]
    fn entries_ahead_under_a_scope_know_what_replayed_beside_them() {
        let mut journal = journal(&[
            ("o#0", 5),
            ("o#0/x#0", 1),
            ("o#0/x#1", 2),
            ("o#0/y#0/z#0", 3),
            ("p#0", 4),
        ]);
        // `o#0/x#0` waits (a `select!` branch, say): what replayed beside it matters.
        journal[1].1.finished_at = None;
        let mut replay = Replay::new(journal);
        assert!(replay.take("o#0/x#1").is_some());
        let ahead = replay.ahead_under("o#0/");
        let ids: Vec<_> = ahead.iter().map(|(id, _, replayed)| (*id, *replayed)).collect();
        assert_eq!(ids, [("o#0/x#0", Some(2)), ("o#0/y#0/z#0", None)]);
        replay.drop_under("o#0/");
        assert!(replay.ahead_under("o#0/").is_empty());
        assert_eq!(replay.take("o#0/x#0"), None, "a dropped entry is not replayed");
        let all: Vec<_> = replay
            .ahead_under("")
            .into_iter()
            .map(|(id, _, replayed)| (id, replayed))
            .collect();
        // No waiting entry is left: nothing replayed beside them is looked up.
        assert_eq!(all, [("o#0", None), ("p#0", None)]);
    }

    #[test]
    fn a_journal_out_of_order_keeps_the_highest_seq_of_each_id() {
        let unordered = vec![
            ("b#0".to_owned(), step(1)),
            ("a#0".to_owned(), step(2)),
            ("b#0".to_owned(), step(3)),
            ("a#0".to_owned(), step(0)),
        ];
        let mut replay = Replay::new(unordered);
        assert_eq!(replay.take("a#0").map(|r| r.seq), Some(2));
        assert_eq!(replay.take("b#0").map(|r| r.seq), Some(3));
        assert_eq!(replay.take("b#0"), None);
    }

    #[test]
    fn a_journal_out_of_order_whose_latest_entry_is_a_rewind_runs_the_step_again() {
        let mut rewound = step(2);
        rewound.kind = StepKind::Rewound;
        let unordered = vec![
            ("b#0".to_owned(), rewound),
            ("a#0".to_owned(), step(0)),
            ("b#0".to_owned(), step(1)),
        ];
        let mut replay = Replay::new(unordered);
        assert_eq!(
            replay.take("b#0"),
            None,
            "the rewind (seq 2) wins over the entry it set aside"
        );
        assert!(replay.take("a#0").is_some());
    }

    #[test]
    fn rewound_entries_are_not_replayed() {
        let mut rewound = step(1);
        rewound.kind = StepKind::Rewound;
        let mut replay = Replay::new(vec![("a#0".to_owned(), step(0)), ("b#0".to_owned(), rewound)]);
        assert!(replay.take("b#0").is_none());
        assert!(replay.take("a#0").is_some());
    }
}
