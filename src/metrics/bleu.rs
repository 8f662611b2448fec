//! BLEU. [`corpus_bleu`] follows sacreBLEU 2.x's `BLEU()` defaults exactly: the `13a`
//! tokenizer (after `rstrip`, optional lower-casing), n-grams up to 4 clipped by the maximum
//! count over the references, the closest reference length (ties: the shorter), corpus-level
//! sums, `exp` smoothing (the k-th order with no match gets precision `100 / (2^k · total)`),
//! an early 0 when nothing matches, the brevity penalty `exp(1 − r/c)`, score 0–100. Empty
//! reference lines are skipped as in sacreBLEU; a segment without any reference is an error.
//! [`sentence_mean`] is the seed study's figure: the mean over segments of unsmoothed sentence
//! BLEU-4 on lower-cased `\w+` words ([`crate::text::words`]) against the first reference, 0–1.

use regex::Regex;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::OnceLock;

const N: usize = 4;

/// Tokenizer applied before counting n-grams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tokenize {
    /// sacreBLEU's default `13a` (mteval-v13a).
    #[default]
    T13a,
    /// Split on whitespace only.
    None,
}

impl std::str::FromStr for Tokenize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "13a" => Ok(Tokenize::T13a),
            "none" => Ok(Tokenize::None),
            o => Err(format!("unknown tokenizer `{o}` (expected 13a or none)")),
        }
    }
}

/// Options of [`corpus_bleu`]; the default is sacreBLEU's.
#[derive(Debug, Clone, Copy, Default)]
pub struct BleuOptions {
    pub tokenize: Tokenize,
    pub lowercase: bool,
}

/// A corpus BLEU result with sacreBLEU's fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BleuScore {
    /// 0–100.
    pub score: f64,
    /// Per-order precisions in percent (smoothed as sacreBLEU reports them).
    pub precisions: Vec<f64>,
    pub bp: f64,
    pub ratio: f64,
    pub hyp_len: usize,
    pub ref_len: usize,
    pub counts: Vec<usize>,
    pub totals: Vec<usize>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BleuError {
    #[error("reference stream {stream} has {got} lines but the hypotheses have {want}")]
    LineCount {
        stream: usize,
        got: usize,
        want: usize,
    },
    #[error("segment {0} (line {line}) has only empty references", line = .0 + 1)]
    EmptyReference(usize),
    #[error("no reference streams given")]
    NoReferences,
}

fn res() -> &'static [(Regex, &'static str); 4] {
    static R: OnceLock<[(Regex, &'static str); 4]> = OnceLock::new();
    R.get_or_init(|| {
        [
            // Symbols and punctuation of the ASCII ranges {-~, [-`, space-&, (-+, :-@ and /.
            (
                Regex::new(r"([\{-~\[-`\x20-&\(-\+:-@/])").expect("regex"),
                " ${1} ",
            ),
            // Period and comma unless preceded by a digit.
            (Regex::new(r"([^0-9])([\.,])").expect("regex"), "${1} ${2} "),
            // Period and comma unless followed by a digit.
            (Regex::new(r"([\.,])([^0-9])").expect("regex"), " ${1} ${2}"),
            // Dash when preceded by a digit.
            (Regex::new(r"([0-9])(-)").expect("regex"), "${1} ${2} "),
        ]
    })
}

/// sacreBLEU's `13a` tokenizer: returns the tokens joined by single spaces.
pub fn tokenize_13a(line: &str) -> String {
    let mut s = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    s = format!(" {s} ");
    for (re, rep) in res() {
        s = re.replace_all(&s, *rep).into_owned();
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn preprocess(line: &str, o: &BleuOptions) -> Vec<String> {
    let line = if o.lowercase {
        line.to_lowercase()
    } else {
        line.to_string()
    };
    let line = line.trim_end();
    match o.tokenize {
        Tokenize::T13a => tokenize_13a(line)
            .split(' ')
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
        Tokenize::None => line.split_whitespace().map(String::from).collect(),
    }
}

fn ngrams(toks: &[String]) -> HashMap<&[String], usize> {
    let mut m = HashMap::new();
    for n in 1..=N {
        for g in toks.windows(n) {
            *m.entry(g).or_insert(0) += 1;
        }
    }
    m
}

fn closest_ref_len(hyp_len: usize, ref_lens: &[usize]) -> usize {
    let mut best: Option<(usize, usize)> = None; // (diff, len)
    for &r in ref_lens {
        let d = hyp_len.abs_diff(r);
        best = match best {
            None => Some((d, r)),
            Some((bd, bl)) if d < bd || (d == bd && r < bl) => Some((d, r)),
            b => b,
        };
    }
    best.map_or(0, |b| b.1)
}

/// Corpus BLEU of `hyps` against reference streams `refs` (`refs[r][i]` is stream `r`'s
/// reference for segment `i`).
pub fn corpus_bleu<S: AsRef<str>, R: AsRef<str>>(
    hyps: &[S],
    refs: &[Vec<R>],
    opts: &BleuOptions,
) -> Result<BleuScore, BleuError> {
    if refs.is_empty() {
        return Err(BleuError::NoReferences);
    }
    for (r, stream) in refs.iter().enumerate() {
        if stream.len() != hyps.len() {
            return Err(BleuError::LineCount {
                stream: r + 1,
                got: stream.len(),
                want: hyps.len(),
            });
        }
    }
    let mut correct = [0usize; N];
    let mut total = [0usize; N];
    let (mut sys_len, mut ref_len) = (0usize, 0usize);
    for (i, h) in hyps.iter().enumerate() {
        let ref_toks: Vec<Vec<String>> = refs
            .iter()
            .map(|s| s[i].as_ref())
            .filter(|s| !s.is_empty())
            .map(|s| preprocess(s, opts))
            .collect();
        if ref_toks.is_empty() {
            return Err(BleuError::EmptyReference(i));
        }
        let mut max_ref: HashMap<&[String], usize> = HashMap::new();
        for rt in &ref_toks {
            for (g, c) in ngrams(rt) {
                let e = max_ref.entry(g).or_insert(0);
                *e = (*e).max(c);
            }
        }
        let lens: Vec<usize> = ref_toks.iter().map(|r| r.len()).collect();
        let ht = preprocess(h.as_ref(), opts);
        sys_len += ht.len();
        ref_len += closest_ref_len(ht.len(), &lens);
        for (g, c) in ngrams(&ht) {
            total[g.len() - 1] += c;
            if let Some(&rc) = max_ref.get(g) {
                correct[g.len() - 1] += c.min(rc);
            }
        }
    }
    Ok(compute(correct, total, sys_len, ref_len))
}

fn compute(correct: [usize; N], total: [usize; N], sys_len: usize, ref_len: usize) -> BleuScore {
    let bp = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    let ratio = if ref_len > 0 {
        sys_len as f64 / ref_len as f64
    } else {
        0.0
    };
    let mut precisions = vec![0.0f64; N];
    let mut score = 0.0;
    if correct.iter().any(|&c| c > 0) {
        let mut smooth = 1.0f64;
        for n in 0..N {
            if total[n] == 0 {
                break;
            }
            if correct[n] == 0 {
                smooth *= 2.0;
                precisions[n] = 100.0 / (smooth * total[n] as f64);
            } else {
                precisions[n] = 100.0 * correct[n] as f64 / total[n] as f64;
            }
        }
        // sacreBLEU's my_log(0) = -9999999999.
        let logs: f64 = precisions
            .iter()
            .map(|&p| if p == 0.0 { -9_999_999_999.0 } else { p.ln() })
            .sum();
        score = bp * (logs / N as f64).exp();
    }
    BleuScore {
        score,
        precisions,
        bp,
        ratio,
        hyp_len: sys_len,
        ref_len,
        counts: correct.to_vec(),
        totals: total.to_vec(),
    }
}

/// The seed's sentence BLEU: unsmoothed BLEU-4 (geometric mean of the four clipped
/// precisions, 0 if any is 0) times the brevity penalty, on lower-cased `\w+` words, 0–1.
pub fn sentence_bleu_seed(hyp: &str, reference: &str) -> f64 {
    let h: Vec<String> = crate::text::words(hyp).collect();
    let r: Vec<String> = crate::text::words(reference).collect();
    if h.is_empty() {
        return 0.0;
    }
    let rg = ngrams(&r);
    let mut logp = 0.0;
    for n in 1..=N {
        if h.len() < n {
            return 0.0;
        }
        let mut hc: HashMap<&[String], usize> = HashMap::new();
        for g in h.windows(n) {
            *hc.entry(g).or_insert(0) += 1;
        }
        let matched: usize = hc
            .iter()
            .map(|(g, &c)| c.min(rg.get(g).copied().unwrap_or(0)))
            .sum();
        if matched == 0 {
            return 0.0;
        }
        logp += (matched as f64 / (h.len() - n + 1) as f64).ln();
    }
    let bp = if h.len() < r.len() {
        (1.0 - r.len() as f64 / h.len() as f64).exp()
    } else {
        1.0
    };
    bp * (logp / N as f64).exp()
}

/// Mean of [`sentence_bleu_seed`] over segments (0 for no segments).
pub fn sentence_mean<S: AsRef<str>, R: AsRef<str>>(hyps: &[S], refs: &[R]) -> f64 {
    if hyps.is_empty() {
        return 0.0;
    }
    hyps.iter()
        .zip(refs)
        .map(|(h, r)| sentence_bleu_seed(h.as_ref(), r.as_ref()))
        .sum::<f64>()
        / hyps.len() as f64
}
