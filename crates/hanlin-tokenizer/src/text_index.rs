//! Text → id lookup that stores only ids: the texts already live in the vocabulary, and a
//! `HashMap<String, u32>` would copy all of them (≈15 MB for Gemma 3's 262k tokens).

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

/// Ids of a vocabulary, hashed by their text.
#[derive(Debug, Default)]
pub(crate) struct TextIndex {
    table: HashTable<u32>,
    hasher: RandomState,
}

impl TextIndex {
    /// Room for `n` more ids.
    pub fn reserve<'a>(&mut self, n: usize, text_of: impl Fn(u32) -> &'a str) {
        let hasher = &self.hasher;
        self.table.reserve(n, |&id| hasher.hash_one(text_of(id)));
    }

    /// The id whose text is `text`.
    pub fn get<'a>(&self, text: &str, text_of: impl Fn(u32) -> &'a str) -> Option<u32> {
        let h = self.hasher.hash_one(text);
        self.table.find(h, |&id| text_of(id) == text).copied()
    }

    /// Adds `id` under `text` (which `text_of(id)` must return from now on); the caller has
    /// checked that no other id has this text.
    pub fn insert<'a>(&mut self, id: u32, text: &str, text_of: impl Fn(u32) -> &'a str) {
        let hasher = &self.hasher;
        let h = hasher.hash_one(text);
        self.table
            .insert_unique(h, id, |&other| hasher.hash_one(text_of(other)));
    }
}

#[cfg(test)]
mod tests {
    use super::TextIndex;

    #[test]
    fn finds_every_text_and_nothing_else() {
        let texts: Vec<String> = (0..5000).map(|i| format!("▁tok{i}")).collect();
        let mut idx = TextIndex::default();
        let text_of = |id: u32| texts[id as usize].as_str();
        idx.reserve(10, text_of);
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(idx.get(t, text_of), None);
            idx.insert(i as u32, t, text_of);
        }
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(idx.get(t, text_of), Some(i as u32));
        }
        assert_eq!(idx.get("▁tok5000", text_of), None);
        assert_eq!(idx.get("", text_of), None);
    }
}
