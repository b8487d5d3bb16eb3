//! Random tokens: epochs, client ids, test topic names.

/// `n` random base-36 characters (time-seeded if the OS has no randomness).
pub fn random_token(n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut buf = vec![0u8; n];
    if getrandom::fill(&mut buf).is_err() {
        let seed = crate::now_ms() ^ u64::from(std::process::id());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed >> ((i * 7) % 57)) as u8 ^ (i as u8).wrapping_mul(31);
        }
    }
    buf.iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// A fresh epoch: 8 random base-36 characters.
pub fn new_epoch() -> String {
    random_token(8)
}
