//! The packed objects of one watch, kept in one block of memory.
//!
//! Each object is its trimmed JSON (a few hundred bytes to a few KiB). Kept in an allocation of
//! its own, every one lands in a hole the list left behind: a list parses whole pages of
//! untrimmed objects, and the packed copies end up scattered over the pages those freed, which
//! then stay resident because a live object pins each. Measured in `make bench-scale`, that
//! scattering cost about as much resident memory as the objects themselves.
//!
//! So a list appends every object to one growing block, which replaces the previous block when
//! the list is complete. An object that changes after that is packed in an allocation of its own
//! (few change at a time), and when the bytes outside the block or no longer used in it exceed
//! half the block, everything is copied into a new block.

use std::collections::HashMap;

/// Where an object's bytes are.
enum At {
    /// In the block, at `start`, `len` bytes.
    Block { start: u32, len: u32 },
    /// In the block the running list is filling.
    Listing { start: u32, len: u32 },
    /// In an allocation of its own (changed since the block was made).
    Own(Box<[u8]>),
}

/// One object: where its bytes are, the list generation that last carried it, and whether a
/// tick must re-evaluate it.
pub struct Entry {
    at: At,
    pub generation: u32,
    pub timed: bool,
}

/// Below this many loose bytes (own allocations plus unused block bytes) nothing is compacted.
const SLACK_MIN: usize = 64 * 1024;

/// The objects, keyed by a hash of namespace and name.
#[derive(Default)]
pub struct Packs {
    entries: HashMap<u64, Entry>,
    block: Box<[u8]>,
    /// What a running list has appended so far.
    listing: Vec<u8>,
    /// Bytes in own allocations plus bytes of the block no entry uses any more.
    slack: usize,
}

impl Packs {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The bytes of every object kept (not counting the table).
    pub fn bytes(&self) -> usize {
        self.entries.values().map(|e| self.get(e).len()).sum()
    }

    /// The bytes of one entry.
    pub fn get<'a>(&'a self, e: &'a Entry) -> &'a [u8] {
        read(&self.block, &self.listing, &e.at)
    }

    /// An object of a running list: `write` appends its bytes to the list's block.
    pub fn listed(&mut self, key: u64, generation: u32, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.listing.len();
        write(&mut self.listing);
        let at = At::Listing {
            start: offset(start),
            len: offset(self.listing.len() - start),
        };
        let entry = Entry {
            at,
            generation,
            timed: true,
        };
        if let Some(before) = self.entries.insert(key, entry) {
            self.forget(&before.at);
        }
    }

    /// The list is complete: entries of other generations are dropped, and the list's block
    /// replaces the old one.
    pub fn list_done(&mut self, generation: u32) {
        self.entries.retain(|_, e| e.generation == generation);
        // Every entry left came from this list, but one that changed after it was listed (not
        // possible while a list runs, kept correct anyway) is copied in.
        let mut block = std::mem::take(&mut self.listing);
        for e in self.entries.values_mut() {
            e.at = match std::mem::replace(&mut e.at, At::Own(Box::default())) {
                At::Listing { start, len } => At::Block { start, len },
                other => {
                    let bytes = read(&self.block, &[], &other);
                    let start = offset(block.len());
                    block.extend_from_slice(bytes);
                    At::Block {
                        start,
                        len: offset(bytes.len()),
                    }
                }
            };
        }
        self.block = block.into_boxed_slice();
        self.slack = 0;
        self.entries.shrink_to_fit();
        // A list that failed part-way and started again appended the first attempt's objects
        // too: the block holds them until it is made anew.
        let live = self.bytes();
        if self.block.len() - live > SLACK_MIN.max(live / 2) {
            self.compact();
        }
    }

    /// An object created or changed outside a list; returns its bytes before, if any.
    pub fn insert(&mut self, key: u64, bytes: Box<[u8]>, generation: u32) -> Option<Box<[u8]>> {
        self.slack += bytes.len();
        let entry = Entry {
            at: At::Own(bytes),
            generation,
            timed: true,
        };
        let old = self.entries.insert(key, entry).map(|before| {
            self.forget(&before.at);
            match before.at {
                At::Own(b) => b,
                other => read(&self.block, &self.listing, &other).into(),
            }
        });
        self.compact_if_loose();
        old
    }

    pub fn remove(&mut self, key: u64) {
        if let Some(e) = self.entries.remove(&key) {
            self.forget(&e.at);
            self.compact_if_loose();
        }
    }

    pub fn entry_mut(&mut self, key: u64) -> Option<&mut Entry> {
        self.entries.get_mut(&key)
    }

    /// Every entry with its bytes; `f` may change the entry's `timed`.
    pub fn each(&mut self, mut f: impl FnMut(&[u8], &mut bool)) {
        let (block, listing) = (&self.block, &self.listing);
        for e in self.entries.values_mut() {
            f(read(block, listing, &e.at), &mut e.timed);
        }
    }

    pub fn entries(&self) -> impl Iterator<Item = (&Entry, &[u8])> {
        self.entries.values().map(|e| (e, self.get(e)))
    }

    /// An entry's bytes are no longer used: block bytes become slack, an own allocation is
    /// freed (the listing's are dropped with it when the list is done).
    fn forget(&mut self, at: &At) {
        match at {
            At::Block { len, .. } => self.slack += *len as usize,
            At::Own(b) => self.slack -= b.len(),
            At::Listing { .. } => {}
        }
    }

    fn compact_if_loose(&mut self) {
        if self.listing.is_empty() && self.slack > SLACK_MIN.max(self.block.len() / 2) {
            self.compact();
        }
    }

    /// Copies every object into a new block.
    fn compact(&mut self) {
        let total = self.bytes();
        let mut block = Vec::with_capacity(total);
        for e in self.entries.values_mut() {
            let bytes = read(&self.block, &self.listing, &e.at);
            let start = offset(block.len());
            block.extend_from_slice(bytes);
            e.at = At::Block {
                start,
                len: offset(bytes.len()),
            };
        }
        self.block = block.into_boxed_slice();
        self.slack = 0;
    }

    /// Bytes outside the block plus block bytes unused, for tests.
    #[cfg(test)]
    fn slack(&self) -> usize {
        self.slack
    }
}

fn read<'a>(block: &'a [u8], listing: &'a [u8], at: &'a At) -> &'a [u8] {
    match at {
        At::Block { start, len } => &block[*start as usize..][..*len as usize],
        At::Listing { start, len } => &listing[*start as usize..][..*len as usize],
        At::Own(b) => b,
    }
}

/// A block offset: blocks stay far below 4 GiB (a watch of a million 4 KiB objects).
fn offset(n: usize) -> u32 {
    u32::try_from(n).expect("a watch's packed objects fit in 4 GiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Box<[u8]> {
        s.as_bytes().into()
    }

    fn contents(p: &Packs) -> Vec<String> {
        let mut v: Vec<String> = p
            .entries()
            .map(|(_, b)| String::from_utf8(b.to_vec()).unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_list_fills_one_block_and_drops_what_it_did_not_carry() {
        let mut p = Packs::default();
        p.listed(1, 1, |b| b.extend(b"one"));
        p.listed(2, 1, |b| b.extend(b"two"));
        p.listed(3, 1, |b| b.extend(b"three"));
        p.list_done(1);
        assert_eq!(contents(&p), ["one", "three", "two"]);
        assert_eq!((p.block.len(), p.slack()), (11, 0));
        // A re-list that no longer carries 2 and changes 3.
        p.listed(1, 2, |b| b.extend(b"one"));
        p.listed(3, 2, |b| b.extend(b"THREE"));
        assert_eq!(
            contents(&p),
            ["THREE", "one", "two"],
            "the old block serves until done"
        );
        p.list_done(2);
        assert_eq!(contents(&p), ["THREE", "one"]);
        assert_eq!((p.block.len(), p.slack(), p.len()), (8, 0, 2));
    }

    #[test]
    fn a_list_started_again_leaves_no_waste_in_the_block() {
        let mut p = Packs::default();
        for i in 0..100u64 {
            p.listed(i, 1, |b| b.extend([b'x'; 1000]));
        }
        // The list failed after 100 objects and starts again (a new generation).
        for i in 0..100u64 {
            p.listed(i, 2, |b| b.extend([b'y'; 1000]));
        }
        p.list_done(2);
        assert_eq!((p.len(), p.bytes(), p.block.len()), (100, 100_000, 100_000));
        assert!(p.entries().all(|(_, b)| b.iter().all(|c| *c == b'y')));
    }

    #[test]
    fn changes_outside_a_list_are_kept_apart_until_they_outweigh_the_block() {
        let mut p = Packs::default();
        let body = |i: usize, v: u8| vec![v; 1000 + i % 7].into_boxed_slice();
        for i in 0..400 {
            p.listed(i as u64, 1, |b| b.extend(body(i, b'a')));
        }
        p.list_done(1);
        let block = p.block.len();
        assert_eq!(p.bytes(), block);
        // A change returns the bytes before and counts both copies as slack.
        let before = p.insert(7, body(7, b'b'), 1).unwrap();
        assert_eq!(&*before, &*body(7, b'a'));
        assert_eq!(p.slack(), 2 * body(7, 0).len());
        assert_eq!(p.block.len(), block, "one change does not copy the block");
        // A second change of the same object: its own copy is replaced.
        assert_eq!(&*p.insert(7, body(7, b'c'), 1).unwrap(), &*body(7, b'b'));
        assert_eq!(p.slack(), 2 * body(7, 0).len());
        // Changing most objects compacts into a block of exactly what is kept.
        for i in 0..300 {
            p.insert(i as u64, body(i, b'd'), 1);
        }
        p.remove(399);
        let own = p
            .entries
            .values()
            .filter(|e| matches!(e.at, At::Own(_)))
            .count();
        assert!(
            own < 150,
            "{own} of 300 changes outside the block: it was made anew"
        );
        assert!(p.slack() <= block / 2, "slack {} of {block}", p.slack());
        assert_eq!(p.len(), 399);
        let mut seen = 0;
        p.each(|b, timed| {
            assert!(b[0] == b'a' || b[0] == b'd');
            *timed = false;
            seen += 1;
        });
        assert_eq!(seen, 399);
        assert!(p.entries().all(|(e, _)| !e.timed));
        for i in 0..399u64 {
            let (e, b) = (
                p.entries.get(&i).unwrap(),
                p.get(p.entries.get(&i).unwrap()),
            );
            let want = if i < 300 { b'd' } else { b'a' };
            assert_eq!(
                (b.len(), b[0], e.generation),
                (1000 + i as usize % 7, want, 1)
            );
        }
    }

    #[test]
    fn removing_everything_leaves_nothing_behind() {
        let mut p = Packs::default();
        for i in 0..200u64 {
            p.listed(i, 1, |b| b.extend([b'x'; 2000]));
        }
        p.list_done(1);
        for i in 0..200u64 {
            p.remove(i);
        }
        assert_eq!((p.len(), p.bytes()), (0, 0));
        assert!(p.block.len() <= SLACK_MIN, "compacted once most was gone");
        p.insert(5, bytes("back"), 1);
        assert_eq!(contents(&p), ["back"]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// A list of these keys, each with a body of this length and fill.
        List(Vec<(u64, usize, u8)>),
        Change(u64, usize, u8),
        Remove(u64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let body = (0u64..300, 1usize..3000, any::<u8>());
        prop_oneof![
            1 => proptest::collection::vec(body.clone(), 0..300).prop_map(Op::List),
            6 => body.prop_map(|(k, n, v)| Op::Change(k, n, v)),
            2 => (0u64..300).prop_map(Op::Remove),
        ]
    }

    proptest::proptest! {
        /// Many objects over lists, re-lists, changes and deletions, as a watch sees them: the
        /// store always reads back exactly what a plain map of the latest bytes holds, and
        /// never keeps more than half its block (or 64 KiB) in loose bytes.
        #[test]
        fn reads_back_what_a_plain_map_holds(ops in proptest::collection::vec(op(), 1..40)) {
            let mut p = Packs::default();
            let mut model: HashMap<u64, Vec<u8>> = HashMap::new();
            let mut generation = 0;
            for op in ops {
                match op {
                    Op::List(items) => {
                        generation += 1;
                        let mut listed = HashMap::new();
                        for (k, n, v) in items {
                            p.listed(k, generation, |b| b.extend(std::iter::repeat_n(v, n)));
                            listed.insert(k, vec![v; n]);
                        }
                        p.list_done(generation);
                        model = listed;
                    }
                    Op::Change(k, n, v) => {
                        let before = p.insert(k, vec![v; n].into_boxed_slice(), generation);
                        proptest::prop_assert_eq!(
                            before.map(|b| b.to_vec()),
                            model.insert(k, vec![v; n])
                        );
                    }
                    Op::Remove(k) => {
                        p.remove(k);
                        model.remove(&k);
                    }
                }
                let kept: HashMap<u64, Vec<u8>> = p
                    .entries
                    .iter()
                    .map(|(k, e)| (*k, p.get(e).to_vec()))
                    .collect();
                proptest::prop_assert_eq!(&kept, &model);
                proptest::prop_assert!(p.slack() <= SLACK_MIN.max(p.block.len() / 2));
            }
        }
    }
}
