//! The mutations: a deterministic generator and what it does to a seed file.

/// SplitMix64: small, fast and good enough to pick mutations.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Tokens that mean something to one of the formats read.
const TOKENS: &[&str] = &[
    "{{",
    "}}",
    "\"\"",
    "''",
    "{%",
    "%}",
    "{#",
    "#}",
    "{{ x }}",
    "{% if %}",
    "{% endif %}",
    "{% for x in y %}",
    "{% raw %}",
    "{{ x | default(value=1) }}",
    ": ",
    ":",
    "- ",
    "-",
    "? ",
    "[",
    "]",
    "{",
    "}",
    "[]",
    "{}",
    "\"",
    "'",
    "`",
    "\t",
    "\0",
    "\r",
    "\r\n",
    "\n",
    "\n\n",
    " ",
    "#",
    ";",
    "=",
    ",",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!!str ",
    "!tag ",
    "~",
    "null",
    "true",
    "yes",
    "no",
    "|",
    ">",
    "|-",
    "---",
    "...",
    "%YAML 1.2\n",
    "\\",
    "\\u0000",
    "\\x",
    "\u{feff}",
    "\u{202e}",
    "é",
    "\u{10ffff}",
    "99999999999999999999999999",
    "18446744073709551616",
    "18446744073709551615",
    "65535",
    "65536",
    "-1",
    "0",
    "1e309",
    "-0",
    "0x1f",
    "0o777",
    ".inf",
    ".nan",
    "[all:vars]",
    "[x:children]",
    "[x:bogus]",
    "[",
    "ansible_port=",
    "ansible_port=99999",
    "ansible_connection=local",
    "ansible_host=",
    "x=\"",
    "@revoked ",
    "@cert-authority ",
    "|1|",
    "|1|AAAA|BBBB",
    "!",
    "*",
    "?",
    "[h]:22",
    "$",
    "$$",
    "${",
    "${X}",
    "${X:?boom}",
    "${X:-d}",
    "${",
    "import_tasks: ",
    "import_playbook: ",
    "hosts: all",
    "when: ",
    "loop: ",
    "vars: ",
    "services:",
    "build: ",
    "deploy:",
    "mode: ",
    "version: ",
    "project:",
    "files: ",
    "\"apps\":",
    "\"routes\":",
    "\"handle\":",
    "\"match\":",
    "null,",
    "[[[[",
    "]]]]",
    "{\"a\":",
    "\u{0}\u{0}\u{0}",
];

/// Numbers at the edges of the integer types a loader may parse into.
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "255",
    "256",
    "65535",
    "65536",
    "2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "1e400",
];

/// Bytes that are not UTF-8 or are otherwise special to a parser.
const BYTES: &[u8] = &[
    0, 0xff, 0xfe, 0xc3, 0x80, 0xed, b'"', b'\'', b':', b'-', b'[', b']', b'{', b'}', b'#', b'=',
    b'\t', b'\n', b'\r', b'&', b'*', b'!', b'|', b'>', b'%', b'\\', b' ', b',', b'@', b'$', b'0',
];

pub(super) fn lines(text: &[u8]) -> Vec<Vec<u8>> {
    text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

pub(super) fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    lines.join(&b'\n')
}

/// Text nested `depth` levels in the flow or block style of YAML/JSON, or in Tera blocks.
fn nested(rng: &mut Rng) -> Vec<u8> {
    let depth = 1 + rng.below(300);
    let s = match rng.below(5) {
        0 => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        1 => format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)),
        2 => (0..depth.min(60))
            .map(|i| format!("{}a:\n", "  ".repeat(i)))
            .collect(),
        3 => format!(
            "{}x{}",
            "{% if true %}".repeat(depth.min(100)),
            "{% endif %}".repeat(depth.min(100))
        ),
        _ => format!("{{{{ {}1{} }}}}", "(".repeat(depth), ")".repeat(depth)),
    };
    s.into_bytes()
}

/// The billion-laughs pattern: each alias level doubles (or tenfolds) the expanded size.
fn alias_bomb(rng: &mut Rng) -> Vec<u8> {
    let levels = 4 + rng.below(12);
    let mut s = String::from("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for i in 1..levels {
        let refs = vec![format!("*a{}", i - 1); 10].join(",");
        s.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    s.push_str(&format!("vars: *a{}\n", levels - 1));
    s.into_bytes()
}

/// One to four mutations of `seed`; `others` are the target's other files, for splicing.
pub(super) fn mutate(rng: &mut Rng, seed: &[u8], others: &[&[u8]]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(16) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = *rng.pick(BYTES);
            }
            2 | 3 => {
                let t = rng.pick(TOKENS).as_bytes();
                data.splice(at..at, t.iter().copied());
            }
            4 => {
                let mut ls = lines(&data);
                let i = rng.below(ls.len());
                ls.remove(i);
                data = join(&ls);
            }
            5 => {
                let mut ls = lines(&data);
                let i = rng.below(ls.len());
                let copy = ls[i].clone();
                ls.insert(rng.below(ls.len() + 1), copy);
                data = join(&ls);
            }
            6 => {
                let mut ls = lines(&data);
                let (i, j) = (rng.below(ls.len()), rng.below(ls.len()));
                ls.swap(i, j);
                data = join(&ls);
            }
            7 if !others.is_empty() => {
                let other: &&[u8] = rng.pick(others);
                let other = lines(other);
                let line = rng.pick(&other).clone();
                let mut ls = lines(&data);
                ls.insert(rng.below(ls.len() + 1), line);
                data = join(&ls);
            }
            8 => data.truncate(at),
            14 => {
                // A number replaced by one at a boundary of the integer types.
                let digits: Vec<usize> = (0..data.len())
                    .filter(|&i| data[i].is_ascii_digit())
                    .collect();
                if !digits.is_empty() {
                    let start = *rng.pick(&digits);
                    let mut end = start;
                    while end < data.len() && data[end].is_ascii_digit() {
                        end += 1;
                    }
                    let n = rng.pick(NUMBERS).as_bytes().to_vec();
                    data.splice(start..end, n);
                }
            }
            13 => {
                // A whole line replaced by one token.
                let mut ls = lines(&data);
                let i = rng.below(ls.len());
                ls[i] = rng.pick(TOKENS).as_bytes().to_vec();
                data = join(&ls);
            }
            9 => {
                let n = nested(rng);
                data.splice(at..at, n);
            }
            10 if rng.below(8) == 0 => {
                let bomb = alias_bomb(rng);
                data.splice(at..at, bomb);
            }
            11 => {
                // Indentation shifted on one line: the commonest hand-edit mistake.
                let mut ls = lines(&data);
                let i = rng.below(ls.len());
                if rng.below(2) == 0 {
                    ls[i].splice(0..0, *b"  ");
                } else if ls[i].starts_with(b" ") {
                    ls[i].remove(0);
                }
                data = join(&ls);
            }
            12 => {
                let len = rng.below(32.min(data.len() + 1));
                let end = (at + len).min(data.len());
                data.drain(at..end);
            }
            _ => {
                let b = *rng.pick(BYTES);
                data.insert(at, b);
            }
        }
    }
    data
}
