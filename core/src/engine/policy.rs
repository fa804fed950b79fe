//! Storage policies and placement: how many shards an object gets and which sites hold them.
//!
//! ```text
//!  "ec:2+1"  ─► Policy::Ec { k: 2, m: 1, chunk_size: 1 MiB }     k data + m parity shards
//!  "replica:3" ─► Policy::Replica { n: 3 }                        n identical full copies
//!  "hybrid:1048576:3:4+2" ─► replica below the threshold, ec at or above it
//!
//!  placement(object id, n shards, sites) ─► site index per shard
//!    shuffle:  rotate by hash(object id) so shards spread evenly over all sites
//!    priority: the first n sites in configured order
//! ```
//!
//! A replica is stored with the erasure-coding layout for k = 1: every shard holds the same
//! chunks and checksums, so reads, verification and repair share one code path.

use tessera_meta::Policy;

/// How shards are assigned to sites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Spread objects over all sites by a hash of the object id.
    #[default]
    Shuffle,
    /// Always the first sites in configured order.
    Priority,
}

/// The shape of one stored object after resolving a hybrid policy by size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// Data shards (1 for a replica).
    pub k: usize,
    /// Shards in total.
    pub n: usize,
    /// Chunk size of full stripes.
    pub chunk_size: u32,
    /// True for n identical copies.
    pub replica: bool,
}

/// Parses a policy as written in the config: `ec:K+M[:CHUNK_BYTES]`, `replica:N`,
/// `hybrid:THRESHOLD_BYTES:N:K+M[:CHUNK_BYTES]`.
pub fn parse(text: &str) -> Result<Policy, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let km = |s: &str| -> Result<(u8, u8), String> {
        let (k, m) = s
            .split_once('+')
            .ok_or_else(|| format!("`{s}` is not K+M"))?;
        Ok((
            k.parse().map_err(|_| format!("bad k in `{s}`"))?,
            m.parse().map_err(|_| format!("bad m in `{s}`"))?,
        ))
    };
    let chunk = |s: Option<&&str>| -> Result<u32, String> {
        s.map_or(Ok(tessera_ec::CHUNK_SIZE_DEFAULT), |s| {
            s.parse().map_err(|_| format!("bad chunk size `{s}`"))
        })
    };
    let policy = match parts.as_slice() {
        ["ec", shape, rest @ ..] if rest.len() <= 1 => {
            let (k, m) = km(shape)?;
            Policy::Ec {
                k,
                m,
                chunk_size: chunk(rest.first())?,
            }
        }
        ["replica", n] => Policy::Replica {
            n: n.parse().map_err(|_| format!("bad replica count `{n}`"))?,
        },
        ["hybrid", threshold, n, shape, rest @ ..] if rest.len() <= 1 => {
            let (k, m) = km(shape)?;
            Policy::Hybrid {
                threshold: threshold
                    .parse()
                    .map_err(|_| format!("bad threshold `{threshold}`"))?,
                n: n.parse().map_err(|_| format!("bad replica count `{n}`"))?,
                k,
                m,
                chunk_size: chunk(rest.first())?,
            }
        }
        _ => {
            return Err(format!(
                "`{text}` is not ec:K+M[:CHUNK], replica:N or hybrid:THRESHOLD:N:K+M[:CHUNK]"
            ))
        }
    };
    Ok(policy)
}

/// Checks that `policy` can be stored on `sites` sites.
pub fn validate(policy: &Policy, sites: usize) -> Result<(), String> {
    let check_ec = |k: u8, m: u8, chunk_size: u32| -> Result<(), String> {
        let n = usize::from(k) + usize::from(m);
        if k == 0 || n > tessera_ec::SHARDS_MAX {
            return Err(format!(
                "ec {k}+{m}: need 1 <= k and k + m <= {}",
                tessera_ec::SHARDS_MAX
            ));
        }
        if n > sites {
            return Err(format!(
                "ec {k}+{m} needs {n} sites but {sites} are configured"
            ));
        }
        if chunk_size == 0
            || chunk_size > tessera_ec::CHUNK_SIZE_MAX
            || chunk_size % tessera_ec::CHUNK_ALIGN != 0
        {
            return Err(format!(
                "chunk size {chunk_size} must be a positive multiple of {} up to {}",
                tessera_ec::CHUNK_ALIGN,
                tessera_ec::CHUNK_SIZE_MAX
            ));
        }
        Ok(())
    };
    let check_replica = |n: u8| -> Result<(), String> {
        if n == 0 || usize::from(n) > sites {
            return Err(format!(
                "replica {n} needs 1..={sites} copies (one per site)"
            ));
        }
        Ok(())
    };
    match *policy {
        Policy::Ec { k, m, chunk_size } => check_ec(k, m, chunk_size),
        Policy::Replica { n } => check_replica(n),
        Policy::Hybrid {
            n,
            k,
            m,
            chunk_size,
            ..
        } => {
            check_replica(n)?;
            check_ec(k, m, chunk_size)
        }
    }
}

/// The policy actually used for an object of `size` bytes (hybrid resolved by size).
#[must_use]
pub fn resolve(policy: &Policy, size: u64) -> (Policy, Resolved) {
    match *policy {
        Policy::Ec { k, m, chunk_size } => (
            *policy,
            Resolved {
                k: usize::from(k),
                n: usize::from(k) + usize::from(m),
                chunk_size,
                replica: false,
            },
        ),
        Policy::Replica { n } => (
            *policy,
            Resolved {
                k: 1,
                n: usize::from(n),
                chunk_size: tessera_ec::CHUNK_SIZE_DEFAULT,
                replica: true,
            },
        ),
        Policy::Hybrid {
            threshold,
            n,
            k,
            m,
            chunk_size,
        } => {
            if size < threshold {
                resolve(&Policy::Replica { n }, size)
            } else {
                resolve(&Policy::Ec { k, m, chunk_size }, size)
            }
        }
    }
}

/// The shape an object was stored with, from its recorded (never hybrid) policy.
#[must_use]
pub fn stored_shape(policy: &Policy, chunk_size: u32) -> Resolved {
    let (_, mut resolved) = resolve(policy, 0);
    resolved.chunk_size = chunk_size;
    resolved
}

/// The default write quorum: k + 1 for erasure coding with parity, 2 for replicas of 2 or
/// more, otherwise every shard.
#[must_use]
pub fn default_write_quorum(shape: &Resolved) -> usize {
    if shape.replica {
        shape.n.min(2)
    } else if shape.n > shape.k {
        shape.k + 1
    } else {
        shape.n
    }
}

/// The sites (indices into the configured list) for the `n` shards of object `id`.
#[must_use]
pub fn place(placement: Placement, id: &[u8; 16], n: usize, sites: usize) -> Vec<u16> {
    assert!(n <= sites && u16::try_from(sites).is_ok());
    let start = match placement {
        Placement::Priority => 0,
        Placement::Shuffle => {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for &b in id {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            (h % sites as u64) as usize
        }
    };
    (0..n).map(|i| ((start + i) % sites) as u16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Policy strings parse into the documented shapes and bad ones name the problem.
    #[test]
    fn parses_policies() {
        assert_eq!(
            parse("ec:2+1").unwrap(),
            Policy::Ec {
                k: 2,
                m: 1,
                chunk_size: 1 << 20
            }
        );
        assert_eq!(
            parse("ec:4+2:65536").unwrap(),
            Policy::Ec {
                k: 4,
                m: 2,
                chunk_size: 65536
            }
        );
        assert_eq!(parse("replica:3").unwrap(), Policy::Replica { n: 3 });
        assert_eq!(
            parse("hybrid:1048576:3:4+2").unwrap(),
            Policy::Hybrid {
                threshold: 1 << 20,
                n: 3,
                k: 4,
                m: 2,
                chunk_size: 1 << 20
            }
        );
        for bad in ["ec:2", "ec:a+1", "raid:5", "replica", "hybrid:x:3:4+2", ""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    /// A policy needing more sites than exist, or impossible shapes, are refused.
    #[test]
    fn validates_against_sites() {
        assert!(validate(
            &Policy::Ec {
                k: 2,
                m: 1,
                chunk_size: 1 << 20
            },
            3
        )
        .is_ok());
        assert!(validate(
            &Policy::Ec {
                k: 4,
                m: 2,
                chunk_size: 1 << 20
            },
            3
        )
        .unwrap_err()
        .contains("needs 6 sites"));
        assert!(validate(
            &Policy::Ec {
                k: 0,
                m: 1,
                chunk_size: 1 << 20
            },
            3
        )
        .is_err());
        assert!(validate(
            &Policy::Ec {
                k: 2,
                m: 1,
                chunk_size: 100
            },
            3
        )
        .is_err());
        assert!(validate(&Policy::Replica { n: 4 }, 3).is_err());
        assert!(validate(&Policy::Replica { n: 0 }, 3).is_err());
    }

    /// Hybrid resolves by size; quorums follow the documented defaults.
    #[test]
    fn resolves_and_quorums() {
        let hybrid = Policy::Hybrid {
            threshold: 100,
            n: 3,
            k: 4,
            m: 2,
            chunk_size: 1 << 20,
        };
        let (small, shape) = resolve(&hybrid, 99);
        assert_eq!(small, Policy::Replica { n: 3 });
        assert_eq!((shape.k, shape.n, shape.replica), (1, 3, true));
        assert_eq!(default_write_quorum(&shape), 2);
        let (_, shape) = resolve(&hybrid, 100);
        assert_eq!((shape.k, shape.n, shape.replica), (4, 6, false));
        assert_eq!(default_write_quorum(&shape), 5);
        let (_, shape) = resolve(
            &Policy::Ec {
                k: 3,
                m: 0,
                chunk_size: 64,
            },
            1,
        );
        assert_eq!(default_write_quorum(&shape), 3);
    }

    /// Placement uses distinct sites; shuffle spreads objects over every site, priority does not.
    #[test]
    fn placement_spreads() {
        let mut first_sites = std::collections::HashSet::new();
        for i in 0..64_u8 {
            let placed = place(Placement::Shuffle, &[i; 16], 3, 5);
            let distinct: std::collections::HashSet<_> = placed.iter().collect();
            assert_eq!(distinct.len(), 3);
            first_sites.insert(placed[0]);
        }
        assert_eq!(first_sites.len(), 5);
        assert_eq!(place(Placement::Priority, &[9; 16], 3, 5), vec![0, 1, 2]);
    }
}
