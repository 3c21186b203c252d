//! One replica set's chain of slices: what it covers, its gaps, and the
//! slices a restore to a time replays.
//!
//! Coverage is judged from the chain itself, not only from what the
//! shipper claimed: a slice's `complete_until` is the shipper's belief
//! that no entry of an earlier second is still to come, and a server that
//! makes entries visible late (SecantusDB does) can make it wrong. Where
//! the chain is continuous a late entry is in a later slice and a replay
//! still finds it; at a gap it would be in the missing part. So the
//! stretch before a gap ends one second before its last entry's second,
//! whatever its slices claim: every time from the gap's first second on
//! is refused.

use super::{Gap, Position, ShipProgress, SliceRecord, seconds_rfc3339};

/// One replica set's slices, gaps and progress, as the store holds them.
#[derive(Debug, Clone, Default)]
pub struct ReplicaSetChain {
    /// The replica set's name.
    pub name: String,
    /// The committed slices, by first position.
    pub slices: Vec<SliceRecord>,
    /// The gaps the shipper recorded.
    pub recorded_gaps: Vec<Gap>,
    /// The shipper's progress note.
    pub progress: Option<ShipProgress>,
    /// Objects that do not belong (uncommitted slices, unreadable records).
    pub stray: Vec<String>,
}

/// A continuous stretch of slices: every entry after `after` up to the
/// second `until` is in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Covered {
    /// Where the stretch starts (exclusive).
    pub after: Position,
    /// The last second it holds in full.
    pub until: u32,
    /// Indexes into [`ReplicaSetChain::slices`].
    pub slices: std::ops::Range<usize>,
}

/// Why a restore to a time cannot be done, with what is covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotCovered {
    /// What is wrong.
    pub reason: String,
}

/// The reason of a gap whose slices are not in the store.
pub const MISSING_SLICE: &str = "missing slice";

impl ReplicaSetChain {
    /// The last committed slice's end, if any.
    pub fn last(&self) -> Option<&SliceRecord> {
        self.slices.last()
    }

    /// Every gap between slices: the recorded ones and the slices that do
    /// not continue where the one before ended ("missing slice"), by
    /// position. [`ReplicaSetChain::gaps_for`] adds the gap between a
    /// base backup and a chain that starts after it.
    pub fn gaps(&self) -> Vec<Gap> {
        let mut gaps = self.recorded_gaps.clone();
        for w in self.slices.windows(2) {
            if w[1].after != w[0].last && !self.recorded(w[0].last, w[1].after) {
                gaps.push(Gap {
                    from: w[0].last,
                    to: w[1].first,
                    reason: MISSING_SLICE.into(),
                });
            }
        }
        gaps.sort_by_key(|g| g.from);
        gaps
    }

    /// [`ReplicaSetChain::gaps`], and the slices missing at the chain's
    /// start: when the newest of `base_ends` (base backups' consistent
    /// points) at or before the first slice's start is before it, what
    /// came between is gone (a shipper starts at the newest base's
    /// point, so nothing else makes a chain start later than that).
    pub fn gaps_for(&self, base_ends: &[Position]) -> Vec<Gap> {
        let mut gaps = self.gaps();
        let Some(first) = self.slices.first() else {
            return gaps;
        };
        let newest = base_ends
            .iter()
            .copied()
            .filter(|e| *e <= first.after)
            .max();
        if let Some(e) = newest
            && e < first.after
            && !gaps.iter().any(|g| g.from <= e && e < g.to)
        {
            gaps.push(Gap {
                from: e,
                to: first.first,
                reason: MISSING_SLICE.into(),
            });
            gaps.sort_by_key(|g| g.from);
        }
        gaps
    }

    fn recorded(&self, from: Position, to: Position) -> bool {
        self.recorded_gaps
            .iter()
            .any(|g| g.from == from && g.to >= to)
    }

    /// The continuous stretches, oldest first. A stretch followed by a gap
    /// (another stretch, or a recorded gap from its end) holds in full
    /// only the seconds before its last entry's.
    pub fn covered(&self) -> Vec<Covered> {
        let mut out: Vec<Covered> = Vec::new();
        for (i, s) in self.slices.iter().enumerate() {
            match out.last_mut() {
                Some(c) if i > 0 && self.slices[i - 1].last == s.after => {
                    c.until = s.complete_until;
                    c.slices.end = i + 1;
                }
                _ => out.push(Covered {
                    after: s.after,
                    until: s.complete_until,
                    slices: i..i + 1,
                }),
            }
        }
        let stretches = out.len();
        for (n, c) in out.iter_mut().enumerate() {
            let last = self.slices[c.slices.end - 1].last;
            let gap_after = n + 1 < stretches || self.recorded_gaps.iter().any(|g| g.from == last);
            if gap_after {
                c.until = c.until.min(last.seconds.saturating_sub(1));
            } else if let Some(p) = self.progress.as_ref().filter(|p| p.last == last) {
                c.until = c.until.max(p.complete_until);
            }
        }
        out
    }

    /// The covered stretches as text: `FROM .. TO, FROM .. TO`.
    pub fn describe_covered(&self) -> String {
        let c = self.covered();
        if c.is_empty() {
            return "none".into();
        }
        c.iter()
            .map(|c| format!("{} .. {}", c.after.rfc3339(), seconds_rfc3339(c.until)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The covered stretch a base consistent at `base_end` goes on with:
    /// it starts at or before `base_end` and reaches it.
    pub fn stretch_of(&self, base_end: Position) -> Option<Covered> {
        self.covered().into_iter().find(|c| {
            c.after <= base_end
                && (base_end.seconds <= c.until || base_end <= self.slices[c.slices.end - 1].last)
        })
    }

    /// [`ReplicaSetChain::plan`], replaying from `from` (at or before
    /// `base_end`, e.g. the base's start) as far back as the slices
    /// reach: the replay is idempotent, and an entry the dump's own range
    /// read missed (made visible late) is then still replayed. Returns
    /// the position the replay starts after, and the slices.
    pub fn plan_from(
        &self,
        from: Position,
        base_end: Position,
        to: u32,
    ) -> std::result::Result<(Position, Vec<&SliceRecord>), NotCovered> {
        self.plan(base_end, to)?;
        let Some(c) = self.stretch_of(base_end) else {
            return Err(NotCovered {
                reason: "no covered stretch".into(),
            });
        };
        let after = from.min(base_end).max(c.after);
        let slices = self.slices[c.slices]
            .iter()
            .filter(|s| s.last > after && s.first.seconds <= to)
            .collect();
        Ok((after, slices))
    }

    /// The slices to replay over a base consistent at `base_end` to reach
    /// the end of second `to`: every slice holding an entry after
    /// `base_end` and at or before `to`, continuous. Refused (naming the
    /// covered stretches) when `to` is before the base, in a gap or
    /// beyond the last slice.
    pub fn plan(
        &self,
        base_end: Position,
        to: u32,
    ) -> std::result::Result<Vec<&SliceRecord>, NotCovered> {
        let refuse = |why: String| NotCovered {
            reason: format!(
                "{why}; replica set {} has slices covering {}",
                self.name,
                self.describe_covered()
            ),
        };
        if to < base_end.seconds {
            return Err(refuse(format!(
                "{} is before the base backup's consistent point {}",
                seconds_rfc3339(to),
                base_end.rfc3339()
            )));
        }
        let gaps = self.gaps_for(&[base_end]);
        let in_gap = |g: &Gap| {
            format!(
                "{} is in a gap or after one ({} .. {}: {})",
                seconds_rfc3339(to),
                g.from.rfc3339(),
                g.to.rfc3339(),
                g.reason
            )
        };
        let Some(c) = self.stretch_of(base_end) else {
            if let Some(g) = gaps.iter().find(|g| g.from <= base_end && base_end < g.to) {
                return Err(refuse(in_gap(g)));
            }
            return Err(refuse(format!(
                "no continuous slices start at or before the base backup's consistent point {}",
                base_end.rfc3339()
            )));
        };
        if to > c.until {
            let end = self.covered().last().map_or(c.until, |l| l.until);
            let gap = gaps
                .iter()
                .find(|g| g.from >= c.after && g.from.seconds <= to);
            let why = match gap {
                Some(g) if to <= end => in_gap(g),
                _ => format!(
                    "{} is beyond the last slice (complete until {})",
                    seconds_rfc3339(to),
                    seconds_rfc3339(end)
                ),
            };
            return Err(refuse(why));
        }
        Ok(self.slices[c.slices]
            .iter()
            .filter(|s| s.last > base_end && s.first.seconds <= to)
            .collect())
    }
}
