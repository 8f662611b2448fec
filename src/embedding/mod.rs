//! Word embeddings for the vocabulary: pretrained vectors and skip-gram training (scaffold).
