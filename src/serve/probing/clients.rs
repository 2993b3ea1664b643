//! The bounded client table: LRU with a capacity and a TTL, holding each client's detector
//! state and evidence counters.

use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use super::prada::PradaState;
use super::rate_limit::{BurstState, TokenBucket};
use super::similarity::RecentQueries;
use super::{table_bytes, PreHashedMap};

const NIL: u32 = u32::MAX;
/// Idle clients dropped per lookup at most, so one call never walks the whole table.
const EXPIRE_PER_CALL: usize = 2;

/// One client's state and evidence.
#[derive(Debug, Clone, Default)]
pub struct ClientState {
    /// The client id as shown (see [`display_id`]).
    pub id: String,
    /// When the client was first seen (since its last expiry).
    pub first_seen: f64,
    /// When the client was last seen.
    pub last_seen: f64,
    /// Requests observed.
    pub queries: u64,
    /// Requests whose verdict was flag or block.
    pub flagged: u64,
    /// Requests whose verdict was block.
    pub blocked: u64,
    /// Requests over the rate limit (INF013), whatever its action.
    pub rate_limited: u64,
    /// Requests in a burst (INF014).
    pub bursts: u64,
    /// Requests matching an earlier query in the Blacklight store (INF010).
    pub blacklight_matches: u64,
    /// Times one of this client's earlier queries was matched by a later query.
    pub blacklight_attributed: u64,
    /// Requests on which INF010 fired.
    pub blacklight_fired: u64,
    /// Requests on which INF011 fired.
    pub similarity_fired: u64,
    /// Requests on which INF012 fired.
    pub prada_fired: u64,
    /// Requests repeating an earlier one exactly.
    pub exact_repeats: u64,
    /// Bit i: the i-th most recent scored request matched in the Blacklight store.
    pub blacklight_bits: u64,
    /// INF011 state.
    pub recent: RecentQueries,
    /// INF012 state.
    pub prada: PradaState,
    /// INF013 state.
    pub bucket: TokenBucket,
    /// INF014 state.
    pub burst: BurstState,
}

impl ClientState {
    fn new(id: String, now: f64) -> ClientState {
        ClientState {
            id,
            first_seen: now,
            last_seen: now,
            ..ClientState::default()
        }
    }

    /// How suspicious the client looks: detector firings (whatever their action) plus
    /// matches of its queries by others.
    pub fn suspicion(&self) -> u64 {
        self.rate_limited
            + self.bursts
            + self.blacklight_fired
            + self.similarity_fired
            + self.prada_fired
            + self.blacklight_attributed
    }

    /// The evidence record shown by `/v1/clients`.
    pub fn evidence(&self) -> ClientEvidence {
        ClientEvidence {
            client: self.id.clone(),
            suspicion: self.suspicion(),
            queries: self.queries,
            flagged: self.flagged,
            blocked: self.blocked,
            rate_limited: self.rate_limited,
            bursts: self.bursts,
            blacklight_matches: self.blacklight_matches,
            blacklight_fired: self.blacklight_fired,
            blacklight_attributed: self.blacklight_attributed,
            similarity_fired: self.similarity_fired,
            near_duplicate_share: self.recent.near_share(),
            prada_fired: self.prada_fired,
            prada_w: self.prada.last_w(),
            exact_repeats: self.exact_repeats,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
        }
    }

    /// Approximate heap bytes held.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Node>()
            + self.id.capacity()
            + self.recent.approx_bytes()
            + self.prada.approx_bytes()
    }
}

/// A client's evidence, as `/v1/clients` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientEvidence {
    /// The client id (hashed when long or unprintable).
    pub client: String,
    /// Detector firings plus matches of its queries by others; the list is sorted by it.
    pub suspicion: u64,
    /// Requests observed.
    pub queries: u64,
    /// Requests flagged or blocked.
    pub flagged: u64,
    /// Requests blocked.
    pub blocked: u64,
    /// Requests over the rate limit.
    pub rate_limited: u64,
    /// Requests in a burst.
    pub bursts: u64,
    /// Requests that matched an earlier query in the global store.
    pub blacklight_matches: u64,
    /// Requests on which INF010 fired.
    pub blacklight_fired: u64,
    /// Times this client's earlier queries were matched by later queries (its own or
    /// others').
    pub blacklight_attributed: u64,
    /// Requests on which INF011 fired.
    pub similarity_fired: u64,
    /// Current share of recent queries that were near-duplicates of the client's own.
    pub near_duplicate_share: f64,
    /// Requests on which INF012 fired.
    pub prada_fired: u64,
    /// Last PRADA W.
    pub prada_w: Option<f64>,
    /// Requests repeating an earlier one exactly.
    pub exact_repeats: u64,
    /// First seen (the caller's clock, seconds).
    pub first_seen: f64,
    /// Last seen.
    pub last_seen: f64,
}

/// How a client id is shown: as is when at most `max_len` bytes of printable text, else
/// `hash:` and 16 hex digits of an unsalted hash (stable across restarts, so it can be found
/// in logs that hash the same way).
pub fn display_id(id: &str, max_len: usize) -> String {
    if id.len() <= max_len && !id.chars().any(char::is_control) {
        id.to_string()
    } else {
        format!("hash:{:016x}", xxh3_64(id.as_bytes()))
    }
}

#[derive(Debug, Clone)]
struct Node {
    key: u64,
    prev: u32,
    next: u32,
    state: ClientState,
}

/// An LRU table of clients keyed by a salted 64-bit hash of the id, with a TTL.
#[derive(Debug)]
pub struct ClientTable {
    index: PreHashedMap<u32>,
    nodes: Vec<Node>,
    free: Vec<u32>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
    capacity: usize,
    ttl: f64,
    max_id_len: usize,
    evictions: u64,
    expirations: u64,
}

impl ClientTable {
    /// An empty table.
    pub fn new(capacity: usize, ttl_secs: f64, max_id_len: usize) -> ClientTable {
        ClientTable {
            index: PreHashedMap::default(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            capacity: capacity.clamp(1, NIL as usize - 1),
            ttl: ttl_secs,
            max_id_len,
            evictions: 0,
            expirations: 0,
        }
    }

    /// The state of client `key` (id `id`) seen at `now`, created if absent (evicting the
    /// least recently seen client when full) and reset if idle longer than the TTL; marks it
    /// most recently used. Does not update `last_seen`.
    pub fn entry(&mut self, key: u64, id: &str, now: f64) -> &mut ClientState {
        self.expire_idle(now, EXPIRE_PER_CALL);
        let i = match self.index.get(&key) {
            Some(&i) => {
                self.unlink(i);
                self.push_front(i);
                let st = &mut self.nodes[i as usize].state;
                if now - st.last_seen > self.ttl {
                    self.expirations += 1;
                    let id = std::mem::take(&mut st.id);
                    *st = ClientState::new(id, now);
                }
                i
            }
            None => {
                if self.index.len() >= self.capacity {
                    let t = self.tail;
                    if t != NIL {
                        self.remove(t);
                        self.evictions += 1;
                    }
                }
                let node = Node {
                    key,
                    prev: NIL,
                    next: NIL,
                    state: ClientState::new(display_id(id, self.max_id_len), now),
                };
                let i = match self.free.pop() {
                    Some(i) => {
                        self.nodes[i as usize] = node;
                        i
                    }
                    None => {
                        self.nodes.push(node);
                        (self.nodes.len() - 1) as u32
                    }
                };
                self.index.insert(key, i);
                self.push_front(i);
                i
            }
        };
        &mut self.nodes[i as usize].state
    }

    /// The state of client `key`, if tracked, without marking it used.
    pub fn get_mut(&mut self, key: u64) -> Option<&mut ClientState> {
        let i = *self.index.get(&key)?;
        Some(&mut self.nodes[i as usize].state)
    }

    /// The state of client `key`, if tracked.
    pub fn get(&self, key: u64) -> Option<&ClientState> {
        let i = *self.index.get(&key)?;
        Some(&self.nodes[i as usize].state)
    }

    /// Drops up to `max` clients idle longer than the TTL, least recently used first.
    pub fn expire_idle(&mut self, now: f64, max: usize) {
        for _ in 0..max {
            let t = self.tail;
            if t == NIL || now - self.nodes[t as usize].state.last_seen <= self.ttl {
                break;
            }
            self.remove(t);
            self.expirations += 1;
        }
    }

    fn remove(&mut self, i: u32) {
        self.unlink(i);
        let node = &mut self.nodes[i as usize];
        self.index.remove(&node.key);
        // Free the detector buffers now, not when the slot is reused.
        node.state = ClientState::default();
        self.free.push(i);
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next)
        };
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else if self.head == i {
            self.head = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        } else if self.tail == i {
            self.tail = prev;
        }
        let n = &mut self.nodes[i as usize];
        n.prev = NIL;
        n.next = NIL;
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        {
            let n = &mut self.nodes[i as usize];
            n.prev = NIL;
            n.next = old;
        }
        if old != NIL {
            self.nodes[old as usize].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    /// Clients tracked.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Most clients tracked.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Clients evicted to make room.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Clients dropped or reset for being idle longer than the TTL.
    pub fn expirations(&self) -> u64 {
        self.expirations
    }

    /// Approximate heap bytes held (walks the table: for gauges, not per request).
    pub fn approx_bytes(&self) -> usize {
        let states: usize = self
            .nodes
            .iter()
            .map(|n| n.state.approx_bytes() - std::mem::size_of::<Node>())
            .sum();
        states
            + self.nodes.capacity() * std::mem::size_of::<Node>()
            + table_bytes(self.nodes.len(), std::mem::size_of::<(u64, u32)>())
            + self.free.capacity() * 4
    }

    /// Clients with some evidence (walks the table).
    pub fn suspicious_count(&self) -> usize {
        self.index
            .values()
            .filter(|&&i| self.nodes[i as usize].state.suspicion() > 0)
            .count()
    }

    /// Up to `n` clients with some evidence, most suspicious first (ties: most recently
    /// seen first). Walks the table: for an admin endpoint, not per request.
    pub fn top_suspicious(&self, n: usize) -> Vec<ClientEvidence> {
        let mut live: Vec<&ClientState> = self
            .index
            .values()
            .map(|&i| &self.nodes[i as usize].state)
            .filter(|s| s.suspicion() > 0)
            .collect();
        let order = |a: &&ClientState, b: &&ClientState| {
            b.suspicion()
                .cmp(&a.suspicion())
                .then(b.last_seen.total_cmp(&a.last_seen))
                .then(a.id.cmp(&b.id))
        };
        if live.len() > n && n > 0 {
            live.select_nth_unstable_by(n - 1, order);
        }
        live.truncate(n);
        live.sort_by(order);
        live.into_iter().map(ClientState::evidence).collect()
    }
}
