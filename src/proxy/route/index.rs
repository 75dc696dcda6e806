//! The index of one host's routes (or of the routes for any host): a trie
//! of their prefixes by `/`-separated token, so a match costs one walk
//! down the request path, not a scan of every route.
//!
//! Which prefixes can match a path `q` ([`super::path_matches`])? A
//! prefix without a trailing `/` matches where `q` has a `/` after it or
//! ends; one with a trailing `/` matches where `q` had that `/`, or is `q`
//! with a `/` added. Split on `/`, `q` is tokens `u0/u1/…/un`; those
//! prefixes are `u0/…/uj` (the node reached after `uj`) and `u0/…/uj/`
//! (that node's child for the empty token), for every `j`. So the walk
//! visits exactly the prefixes that could match, shortest first: the last
//! route it accepts is the longest match, the one the old linear scan
//! (longest first) found first.
//!
//! Tokens are kept ASCII-lower-case, so one trie serves both case-kept and
//! case-folded matching: a node holds every route whose prefix is its text
//! in any case, and the caller's test (the exact [`super::path_matches`])
//! picks among them. Children are a sorted `Vec` searched by bisection:
//! no hashing, no allocation per request, and less memory per node than a
//! map.

/// One host's routes by prefix.
#[derive(Default)]
pub(super) struct Index {
    root: Node,
}

#[derive(Default)]
struct Node {
    /// Routes (indices into [`super::Routes`]' list) whose prefix, lower
    /// case, is the text up to this node; in the order ties are broken (a
    /// route naming a port first, then the config's order).
    routes: Vec<usize>,
    /// By the next token, lower case; sorted by it.
    children: Vec<(Box<[u8]>, Node)>,
}

impl Index {
    /// Adds route `index` with prefix `path`. Routes are added in the
    /// order their ties are broken.
    pub(super) fn insert(&mut self, path: &str, index: usize) {
        let mut node = &mut self.root;
        for token in path.as_bytes().split(|&b| b == b'/') {
            let key: Box<[u8]> = token.to_ascii_lowercase().into();
            let at = match node.children.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(at) => at,
                Err(at) => {
                    node.children.insert(at, (key, Node::default()));
                    at
                }
            };
            node = &mut node.children[at].1;
        }
        node.routes.push(index);
    }

    /// The route of the longest prefix that could match `path` which
    /// `accept` takes (the first it takes among that prefix's routes).
    pub(super) fn longest(&self, path: &str, accept: impl Fn(usize) -> bool) -> Option<usize> {
        let first = |n: &Node| n.routes.iter().copied().find(|&i| accept(i));
        let mut best = None;
        let mut node = &self.root;
        for token in path.as_bytes().split(|&b| b == b'/') {
            match node.child(token) {
                Some(next) => node = next,
                None => break,
            }
            // `u0/…/uj`, then `u0/…/uj/`: shortest first, the later wins.
            if let Some(i) = first(node) {
                best = Some(i);
            }
            if let Some(i) = node.child(b"").and_then(first) {
                best = Some(i);
            }
        }
        best
    }
}

impl Node {
    /// The child for `token`, in any ASCII case.
    fn child(&self, token: &[u8]) -> Option<&Node> {
        let lower = token.iter().map(u8::to_ascii_lowercase);
        self.children
            .binary_search_by(|(k, _)| k.iter().copied().cmp(lower.clone()))
            .ok()
            .map(|at| &self.children[at].1)
    }
}
