//! Work beside a read: the transaction's thread reads rows into blocks, and a helper thread
//! consumes each full block, in order (parsing accounts' fields, decoding packs and folding
//! their events), while the next block is read. A load of many accounts has SQLite's reads on
//! one core and the rest of its work on the other; the consumer sees exactly the blocks, in
//! exactly the order, that a consumer on the reading thread would.

use crate::StoreError;
use std::cell::Cell;
use std::sync::mpsc;

/// From how many accounts on a load hands a part of its work to a helper thread: `default`
/// (each caller's own) unless a test set it ([`set_beside_from`]).
pub(crate) fn beside_from(default: usize) -> usize {
    BESIDE.with(Cell::get).unwrap_or(default)
}

thread_local! {
    /// Tests' override of every caller's threshold (per thread: a test's store calls run on
    /// its own thread).
    static BESIDE: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Tests: on this thread, use a load's helper threads from `from` accounts read on (`None`:
/// the defaults).
pub(crate) fn set_beside_from(from: Option<usize>) {
    BESIDE.with(|c| c.set(from));
}

/// Rows read and not consumed yet.
pub(crate) trait Block: Default + Send {
    /// Time to hand the block over.
    fn full(&self) -> bool;
    fn is_empty(&self) -> bool;
    fn clear(&mut self);
}

/// What a read fills: the block being filled, handed over once full.
pub(crate) struct Filler<B> {
    block: B,
    full_tx: mpsc::SyncSender<B>,
    /// Blocks consumed, sent back to be filled again.
    spent_rx: mpsc::Receiver<B>,
    /// The helper stopped (on an error it reports itself).
    stopped: bool,
}

impl<B: Block> Filler<B> {
    pub(crate) fn block(&mut self) -> &mut B {
        &mut self.block
    }

    /// Hand the block over when it is full (a spent one, cleared, takes its place). An error
    /// when the helper has stopped: [`read_beside`] then returns the helper's own error.
    pub(crate) fn hand_over_if_full(&mut self) -> Result<(), StoreError> {
        if !self.block.full() {
            return Ok(());
        }
        let mut next = self.spent_rx.try_recv().unwrap_or_default();
        next.clear();
        let block = std::mem::replace(&mut self.block, next);
        if self.full_tx.send(block).is_err() {
            self.stopped = true;
            return Err(StoreError::Corrupt("the helper thread stopped".into()));
        }
        Ok(())
    }
}

/// Runs `read` on this thread, giving it a [`Filler`], and `consume` on a helper thread over
/// every block it fills, in order (the last one however full). The first error wins: the
/// helper's when it stopped the read, else the read's, else the helper's.
pub(crate) fn read_beside<B: Block>(
    consume: &mut (dyn FnMut(&B) -> Result<(), StoreError> + Send),
    read: impl FnOnce(&mut Filler<B>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    std::thread::scope(|s| {
        // Two blocks in flight: the reader runs at most two blocks ahead.
        let (full_tx, full_rx) = mpsc::sync_channel::<B>(2);
        let (spent_tx, spent_rx) = mpsc::channel::<B>();
        let helper = s.spawn(move || -> Result<(), StoreError> {
            for block in full_rx {
                consume(&block)?;
                let _ = spent_tx.send(block);
            }
            Ok(())
        });
        let mut filler = Filler {
            block: B::default(),
            full_tx,
            spent_rx,
            stopped: false,
        };
        let read = read(&mut filler);
        let Filler {
            block,
            full_tx,
            stopped,
            ..
        } = filler;
        if read.is_ok() && !block.is_empty() {
            let _ = full_tx.send(block);
        }
        drop(full_tx);
        let consumed = helper
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match (read, consumed) {
            (Err(_), Err(e)) if stopped => Err(e),
            (Err(e), _) | (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(())) => Ok(()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Numbers(Vec<u32>);

    impl Block for Numbers {
        fn full(&self) -> bool {
            self.0.len() >= 3
        }
        fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
        fn clear(&mut self) {
            self.0.clear();
        }
    }

    /// Reads `0..n` (failing at `read_fails`), consumed beside (failing at `consume_fails`).
    fn run(
        n: u32,
        read_fails: Option<u32>,
        consume_fails: Option<u32>,
    ) -> (Result<(), StoreError>, Vec<u32>) {
        let mut seen = Vec::new();
        let mut consume = |b: &Numbers| {
            for &x in &b.0 {
                if Some(x) == consume_fails {
                    return Err(StoreError::Corrupt(format!("consumer at {x}")));
                }
                seen.push(x);
            }
            Ok(())
        };
        let r = read_beside(&mut consume, |f: &mut Filler<Numbers>| {
            for x in 0..n {
                if Some(x) == read_fails {
                    return Err(StoreError::Corrupt(format!("reader at {x}")));
                }
                f.block().0.push(x);
                f.hand_over_if_full()?;
            }
            Ok(())
        });
        (r, seen)
    }

    #[test]
    fn every_row_is_consumed_once_in_order() {
        for n in [0, 1, 2, 3, 4, 10, 1000] {
            let (r, seen) = run(n, None, None);
            r.unwrap();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "{n} rows");
        }
    }

    #[test]
    fn the_consumers_error_wins_and_stops_the_read() {
        let (r, seen) = run(1000, None, Some(7));
        assert_eq!(
            r.unwrap_err().to_string(),
            StoreError::Corrupt("consumer at 7".into()).to_string()
        );
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn a_read_error_is_returned_and_nothing_after_it_is_consumed() {
        let (r, seen) = run(1000, Some(10), None);
        assert_eq!(
            r.unwrap_err().to_string(),
            StoreError::Corrupt("reader at 10".into()).to_string()
        );
        // The last block, not full when the read failed, is not handed over.
        assert_eq!(seen, (0..9).collect::<Vec<_>>());
    }
}
