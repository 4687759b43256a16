//! Parallel processing of a stream in blocks of whole records: one reader (the calling thread)
//! fills recycled buffers and cuts them at a record boundary; workers fold each block into their
//! own state. Memory stays bounded (a few blocks in flight) whatever the file size.

use crate::csv::split_point;
use std::io::{self, Read};
use std::sync::{mpsc, Mutex};

pub const DEFAULT_BLOCK: usize = 4 << 20;

/// One processed block: its index, the line breaks it spans, and the worker's result.
pub struct Block<R> {
    pub index: usize,
    pub lines: u64,
    pub value: R,
}

/// Yields blocks of whole records from a reader.
pub struct BlockReader<R> {
    reader: R,
    carry: Vec<u8>,
    block_size: usize,
    quote_aware: bool,
    /// Bytes read so far.
    pub total: u64,
    done: bool,
}

/// The most bytes one read asks for (and zeroes first).
const READ_STEP: usize = 128 * 1024;

impl<R: Read> BlockReader<R> {
    pub fn new(reader: R, block_size: usize, quote_aware: bool) -> Self {
        BlockReader {
            reader,
            carry: Vec::new(),
            block_size,
            quote_aware,
            total: 0,
            done: false,
        }
    }

    /// Fill `buf` with the next block; `false` at the end.
    pub fn next_block(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        loop {
            if self.done {
                return Ok(false);
            }
            buf.clear();
            buf.extend_from_slice(&self.carry);
            self.carry.clear();
            let want = self.block_size.max(buf.len() + 1);
            let mut eof = false;
            while buf.len() < want {
                let len = buf.len();
                // Grow by at most READ_STEP at a time: zeroing a whole block up front cost a
                // small in-memory input (one API event) more than parsing it.
                buf.resize(want.min(len + READ_STEP), 0);
                let n = match self.reader.read(&mut buf[len..]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                    Err(e) => {
                        buf.truncate(len);
                        return Err(e);
                    }
                };
                buf.truncate(len + n);
                self.total += n as u64;
                if n == 0 {
                    eof = true;
                    break;
                }
            }
            if eof {
                self.done = true;
                return Ok(!buf.is_empty());
            }
            match split_point(buf, self.quote_aware) {
                Some(cut) => {
                    self.carry.extend_from_slice(&buf[cut..]);
                    buf.truncate(cut);
                    return Ok(true);
                }
                // One record larger than the block: read on.
                None => {
                    std::mem::swap(&mut self.carry, buf);
                    self.block_size *= 2;
                }
            }
        }
    }
}

/// Run `work` over `reader` in blocks on `threads` workers.
///
/// `work(state, block, index) -> (line_breaks_in_block, result)`; results come back in input
/// order, states one per worker. `progress` is called with bytes read so far.
/// `finish` is run by each worker on its state after its last block (while the other workers
/// may still be working).
#[allow(clippy::too_many_arguments)]
pub fn par_blocks<S, R, I, W, F>(
    reader: impl Read,
    threads: usize,
    block_size: usize,
    quote_aware: bool,
    init: I,
    work: W,
    finish: F,
    progress: &(dyn Fn(u64) + Sync),
) -> io::Result<(Vec<S>, Vec<Block<R>>)>
where
    S: Send,
    R: Send,
    I: Fn() -> S + Sync,
    W: Fn(&mut S, &[u8], usize) -> (u64, R) + Sync,
    F: Fn(&mut S) + Sync,
{
    let threads = threads.max(1);
    let (tx, rx) = mpsc::sync_channel::<(usize, Vec<u8>)>(threads * 2);
    let rx = Mutex::new(rx);
    let (ret_tx, ret_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for _ in 0..threads {
            let rx = &rx;
            let ret_tx = ret_tx.clone();
            let (init, work, finish) = (&init, &work, &finish);
            handles.push(scope.spawn(move || {
                let mut state = init();
                let mut out = Vec::new();
                loop {
                    let msg = rx.lock().expect("reader alive").recv();
                    let Ok((index, buf)) = msg else { break };
                    let (lines, value) = work(&mut state, &buf, index);
                    out.push(Block {
                        index,
                        lines,
                        value,
                    });
                    let _ = ret_tx.send(buf);
                }
                finish(&mut state);
                (state, out)
            }));
        }
        drop(ret_tx);
        let mut blocks_in = BlockReader::new(reader, block_size, quote_aware);
        let read_result = (|| -> io::Result<()> {
            let mut index = 0;
            loop {
                let mut buf = ret_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(block_size + 4096));
                if !blocks_in.next_block(&mut buf)? {
                    return Ok(());
                }
                progress(blocks_in.total);
                if tx.send((index, buf)).is_err() {
                    return Ok(());
                }
                index += 1;
            }
        })();
        drop(tx);
        let mut states = Vec::new();
        let mut blocks = Vec::new();
        for h in handles {
            let (s, b) = h.join().expect("worker panicked");
            states.push(s);
            blocks.extend(b);
        }
        blocks.sort_by_key(|b| b.index);
        read_result.map(|_| (states, blocks))
    })
}

/// Where a parallel scan reads from: a stream (copied into recycled blocks by a reader thread)
/// or a mapped file (blocks are cut from the map in place; no copy, no reader thread).
pub enum Input {
    Stream(Box<dyn Read + Send + Sync>),
    Mapped {
        /// Shared, so that what is read may point into it (see `load::load_accounts`).
        map: std::sync::Arc<crate::mem::MappedFile>,
        /// Offset of the first record (after the header).
        start: usize,
        /// Keep the blocks mapped once scanned (what was read points into them), instead of
        /// handing their pages back.
        keep: bool,
    },
}

/// Where a mapped input is cut into blocks.
#[derive(Clone, Copy)]
pub enum Cuts<'a> {
    /// At line ends: for formats whose records never hold a line break (JSON Lines).
    Lines,
    /// At record ends, outside quoted fields (CSV): the cutter reads every byte first.
    Records,
    /// At line ends, on trust that the input holds no quote, so the cutter reads only each
    /// block's last line. A quoted CSV field may hold a line break, so the work must set the
    /// flag on seeing any quote: the run then stops taking blocks, and its results must be
    /// thrown away and the input run again with [`Cuts::Records`]. (While no block so far has a
    /// quote, every cut so far is at a record end.) A stream is always cut at records.
    Trusting(&'a std::sync::atomic::AtomicBool),
}

impl Cuts<'_> {
    /// The cut rule that needs no trust, for a CSV (`true`) or JSON Lines input.
    pub fn exact(csv: bool) -> Cuts<'static> {
        match csv {
            true => Cuts::Records,
            false => Cuts::Lines,
        }
    }

    fn stopped(&self) -> bool {
        match self {
            Cuts::Trusting(quoted) => quoted.load(std::sync::atomic::Ordering::Relaxed),
            _ => false,
        }
    }
}

/// [`par_blocks`] over an [`Input`]. A mapped input is cut by `cuts` (a stream by the same
/// rule, [`Cuts::Trusting`] as [`Cuts::Records`]), each block released from the process once
/// its worker is done with it (a later run over the same input maps it again).
/// `finish` as in [`par_blocks`].
#[allow(clippy::too_many_arguments)]
pub fn par_blocks_input<S, R, I, W, F>(
    input: &mut Input,
    threads: usize,
    block_size: usize,
    cuts: Cuts<'_>,
    init: I,
    work: W,
    finish: F,
    progress: &(dyn Fn(u64) + Sync),
) -> io::Result<(Vec<S>, Vec<Block<R>>)>
where
    S: Send,
    R: Send,
    I: Fn() -> S + Sync,
    W: Fn(&mut S, &[u8], usize) -> (u64, R) + Sync,
    F: Fn(&mut S) + Sync,
{
    let (map, start, keep) = match input {
        Input::Stream(r) => {
            return par_blocks(
                r,
                threads,
                block_size,
                !matches!(cuts, Cuts::Lines),
                init,
                work,
                finish,
                progress,
            )
        }
        Input::Mapped { map, start, keep } => (&**map, *start, *keep),
    };
    let quote_aware = matches!(cuts, Cuts::Records);
    let data = map.bytes();
    // Blocks cut at line ends are copied into each worker's own buffer with `pread` (see
    // `MappedFile::read_at`), small enough to stay in the core's cache while it is scanned;
    // the cuts are found in a small window read the same way. The map is the fallback.
    let reading = !quote_aware && map.can_read();
    let block_size = match reading {
        true => block_size.min(READ_BLOCK),
        false => block_size,
    };
    // The cuts are made by a thread of their own, a few blocks ahead of the workers: a cut at a
    // record end reads the block (quotes), which must not hold up a worker. The workers only take
    // the next range.
    let (cuts_tx, cuts_rx) = mpsc::sync_channel::<(usize, std::ops::Range<usize>)>(threads.max(1));
    // Held by the workers only: when they are all gone (even by a panic) the cutter stops.
    let cuts_rx = std::sync::Arc::new(Mutex::new(cuts_rx));
    let cut = move || {
        let (mut pos, mut index, mut size) = (start.min(data.len()), 0usize, block_size);
        let mut window = Vec::new();
        while pos < data.len() {
            let end = loop {
                if data.len() - pos <= size {
                    break data.len();
                }
                if reading {
                    // The last line end before `pos + size` (as `split_point` finds it),
                    // when it lies in the last `CUT_WINDOW` bytes.
                    let w = CUT_WINDOW.min(size);
                    let from = pos + size - w;
                    if map.read_at(&mut window, from, w) {
                        if let Some(i) = memchr::memrchr(b'\n', &window) {
                            break from + i + 1;
                        }
                    }
                }
                match split_point(&data[pos..pos + size], quote_aware) {
                    Some(cut) => break pos + cut,
                    // One record larger than the block: look further.
                    None => size *= 2,
                }
            };
            progress((end - start) as u64);
            if cuts.stopped() || cuts_tx.send((index, pos..end)).is_err() {
                return;
            }
            (pos, index) = (end, index + 1);
        }
    };
    let results = std::thread::scope(|scope| {
        scope.spawn(cut);
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                let (init, work, finish) = (&init, &work, &finish);
                let ranges = cuts_rx.clone();
                scope.spawn(move || {
                    let mut state = init();
                    let mut out = Vec::new();
                    let mut own = Vec::new();
                    loop {
                        let next = ranges.lock().expect("no poison").recv();
                        let Ok((index, range)) = next else { break };
                        if cuts.stopped() {
                            break;
                        }
                        let read = reading && map.read_at(&mut own, range.start, range.len());
                        let block = match read {
                            true => &own[..],
                            false => &data[range.clone()],
                        };
                        let (lines, value) = work(&mut state, block, index);
                        if !read && !keep {
                            map.release(range);
                        }
                        out.push(Block {
                            index,
                            lines,
                            value,
                        });
                    }
                    drop(ranges);
                    finish(&mut state);
                    (state, out)
                })
            })
            .collect();
        drop(cuts_rx);
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect::<Vec<_>>()
    });
    let mut states = Vec::new();
    let mut blocks = Vec::new();
    for (s, b) in results {
        states.push(s);
        blocks.extend(b);
    }
    blocks.sort_by_key(|b| b.index);
    Ok((states, blocks))
}

/// Largest block copied out of a mapped input (see [`par_blocks_input`]): about a core's L2
/// cache, so that most of the block is still cached when the worker scans it (measured on
/// 1M accounts: 1 MiB beat 128 KiB to 4 MiB by 10–60 ms of fold time).
const READ_BLOCK: usize = 1 << 20;
/// Bytes read at a cut to find the line end before it.
const CUT_WINDOW: usize = 4096;

/// Workers to use: the machine's cores, read once (`available_parallelism` reads the cgroup
/// files on every call: a server building load options per request paid for it each time).
pub fn default_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv::for_each_record;

    #[test]
    fn blocks_cover_every_record_once_in_order() {
        let mut text = String::new();
        for i in 0..10_000 {
            if i % 7 == 0 {
                text.push_str(&format!("{i},\"multi\nline, quoted\"\n"));
            } else {
                text.push_str(&format!("{i},plain\n"));
            }
        }
        for threads in [1, 3] {
            let (states, blocks) = par_blocks(
                text.as_bytes(),
                threads,
                1000,
                true,
                || 0u64,
                |n, buf, _| {
                    let mut ids = vec![];
                    let (lines, bad) = for_each_record(buf, 0, |r| {
                        *n += 1;
                        ids.push(
                            std::str::from_utf8(r.get(0))
                                .unwrap()
                                .parse::<u32>()
                                .unwrap(),
                        );
                    });
                    assert!(bad.is_none());
                    (lines, ids)
                },
                |_| {},
                &|_| {},
            )
            .unwrap();
            assert_eq!(states.iter().sum::<u64>(), 10_000);
            let ids: Vec<u32> = blocks.iter().flat_map(|b| b.value.clone()).collect();
            assert_eq!(ids, (0..10_000).collect::<Vec<_>>());
            let lines: u64 = blocks.iter().map(|b| b.lines).sum();
            assert_eq!(lines, 10_000 + 10_000 / 7 + 1);
        }
    }

    /// A mapped input gives the same blocks' lines whether the workers read their blocks
    /// with `pread` (the file kept) or scan the map: every line once, in order, including lines
    /// longer than the cut window (where the cut falls back to the map).
    #[test]
    fn read_blocks_match_the_map() {
        let mut text = String::from("header\n");
        for i in 0..20_000 {
            match i % 997 {
                0 => text.push_str(&format!("{i},{}\n", "x".repeat(CUT_WINDOW * 3))),
                _ => text.push_str(&format!("{i},{}\n", "y".repeat(i % 50))),
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.csv");
        std::fs::write(&path, &text).unwrap();
        let start = "header\n".len();
        let expected: Vec<String> = text[start..].lines().map(String::from).collect();
        for keep_file in [false, true] {
            for block in [1000, 5000, 1 << 20] {
                let f = std::fs::File::open(&path).unwrap();
                let Some(map) = crate::mem::MappedFile::open(&f) else {
                    eprintln!("no memory maps here: skipped");
                    return;
                };
                let map = if keep_file { map.with_file(f) } else { map };
                assert_eq!(map.can_read(), keep_file);
                let mut input = Input::Mapped {
                    map: std::sync::Arc::new(map),
                    start,
                    keep: false,
                };
                let (_, blocks) = par_blocks_input(
                    &mut input,
                    2,
                    block,
                    Cuts::Lines,
                    || (),
                    |_, buf, _| {
                        let text = std::str::from_utf8(buf).unwrap();
                        assert!(text.ends_with('\n'), "a block ends at a line end");
                        let lines: Vec<String> = text.lines().map(String::from).collect();
                        (lines.len() as u64, lines)
                    },
                    |_| {},
                    &|_| {},
                )
                .unwrap();
                let got: Vec<String> = blocks.into_iter().flat_map(|b| b.value).collect();
                assert!(got == expected, "keep_file {keep_file}, block {block}");
            }
        }
    }
}
