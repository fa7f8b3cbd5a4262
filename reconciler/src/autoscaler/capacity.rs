//! The insufficient-capacity cache and the ordered offerings of a node type
//! (docs/DESIGN.md, decision 8: "launching like Karpenter"). An offering is (market,
//! instance type, zone); when AWS refuses one, it is skipped for [`CAPACITY_ERROR_TTL`] and
//! the next is tried, ending with on-demand where the node type allows it.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use fleetform_core::spec::{ClusterSpec, Market};
use serde::{Deserialize, Serialize};

/// How long an offering AWS refused stays skipped. Karpenter uses the same 3 minutes
/// (its `UnavailableOfferingsTTL`): long enough not to hammer a pool that just said no
/// (and to let the next offering be tried at once), short enough that capacity which
/// returns, as spot capacity often does within minutes, is used again soon.
pub const CAPACITY_ERROR_TTL: Duration = Duration::minutes(3);

/// One way to launch a node: market, instance type and zone. `zone: None` means "any
/// zone" (no zones configured, or the local provider); an empty instance type means the
/// node type names none (local provider).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Offering {
    pub market: Market,
    pub instance_type: String,
    pub zone: Option<String>,
}

impl fmt::Display for Offering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let it = if self.instance_type.is_empty() { "any-type" } else { &self.instance_type };
        write!(f, "{it} {}", self.market.as_str())?;
        if let Some(z) = &self.zone {
            write!(f, " {z}")?;
        }
        Ok(())
    }
}

/// Why an offering is skipped. The AWS provider maps its launch errors onto these at the
/// boundary (`InsufficientInstanceCapacity` -> InsufficientCapacity, spot
/// `capacity-not-available` / `MaxSpotInstanceCountExceeded` -> SpotUnavailable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityError {
    InsufficientCapacity,
    SpotUnavailable,
    /// A launch stayed pending past the launch timeout: treat the pool as short.
    LaunchTimedOut,
    /// The account's quota (vCPUs, instances) or the subnet's free addresses ran out.
    QuotaExceeded,
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CapacityError::InsufficientCapacity => "insufficient capacity",
            CapacityError::SpotUnavailable => "spot capacity unavailable",
            CapacityError::LaunchTimedOut => "launch timed out",
            CapacityError::QuotaExceeded => "quota exceeded",
        })
    }
}

/// A cached capacity error. `offering.zone: None` blocks the (market, type) in every zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityEntry {
    pub offering: Offering,
    pub error: CapacityError,
    pub until: DateTime<Utc>,
}

impl CapacityEntry {
    fn blocks(&self, o: &Offering) -> bool {
        self.offering.market == o.market
            && self.offering.instance_type == o.instance_type
            && (self.offering.zone.is_none() || self.offering.zone == o.zone)
    }
}

impl fmt::Display for CapacityEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} until {}", self.offering, self.error, self.until.format("%H:%M"))
    }
}

/// An offering left out, and why: "skip r7i.2xlarge spot us-west-2a: insufficient
/// capacity until 21:14".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skip {
    pub offering: Offering,
    pub error: CapacityError,
    pub until: DateTime<Utc>,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "skip {}: {} until {}", self.offering, self.error, self.until.format("%H:%M"))
    }
}

/// The offerings of a node type, best first, and the ones skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Offerings {
    pub usable: Vec<Offering>,
    pub skipped: Vec<Skip>,
}

/// Offerings AWS refused recently. A handful of entries (types x zones x markets), so a
/// list is the right structure, and it serialises as plain JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CapacityCache {
    entries: Vec<CapacityEntry>,
}

impl CapacityCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remember that `offering` failed at `now`; returns until when it is skipped.
    pub fn record(&mut self, offering: Offering, error: CapacityError, now: DateTime<Utc>) -> DateTime<Utc> {
        let until = now + CAPACITY_ERROR_TTL;
        match self.entries.iter_mut().find(|e| e.offering == offering) {
            Some(e) => {
                e.error = error;
                e.until = e.until.max(until);
            }
            None => self.entries.push(CapacityEntry { offering, error, until }),
        }
        until
    }

    /// The entry that makes `offering` unusable at `now`, if any.
    pub fn unavailable(&self, offering: &Offering, now: DateTime<Utc>) -> Option<&CapacityEntry> {
        self.entries.iter().filter(|e| e.until > now && e.blocks(offering)).max_by_key(|e| e.until)
    }

    /// For an offering in any zone (`zone: None`, no `availability_zones` in the spec):
    /// the zones where it failed recently. The offering stays usable; the provider leaves
    /// those zones out of its launch (one zone's shortage must not block the type in the
    /// others, nor be retried every round).
    fn zones_short_of<'a>(&'a self, o: &'a Offering, now: DateTime<Utc>) -> impl Iterator<Item = Skip> + 'a {
        self.entries
            .iter()
            .filter(move |e| {
                o.zone.is_none()
                    && e.offering.zone.is_some()
                    && e.until > now
                    && (e.offering.market, &e.offering.instance_type) == (o.market, &o.instance_type)
            })
            .map(|e| Skip { offering: e.offering.clone(), error: e.error, until: e.until })
    }

    /// Drop the entries that have expired at `now` and return them.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<CapacityEntry> {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.entries).into_iter().partition(|e| e.until <= now);
        self.entries = kept;
        gone
    }

    /// The live entries, soonest to expire first.
    pub fn entries(&self) -> Vec<&CapacityEntry> {
        let mut v: Vec<&CapacityEntry> = self.entries.iter().collect();
        v.sort_by(|a, b| a.until.cmp(&b.until).then_with(|| a.offering.cmp(&b.offering)));
        v
    }

    /// The offerings of `node_type` in the order to try them, for a launch that prefers
    /// `market`: for spot, every (instance type, zone) on spot in the spec's order, then
    /// the same on-demand if the type has `on_demand_fallback`; for on-demand, only
    /// on-demand. Offerings with a live capacity error are skipped, with the reason.
    pub fn offerings(&self, spec: &ClusterSpec, node_type: &str, market: Market, now: DateTime<Utc>) -> Offerings {
        let Some(t) = spec.available_node_types.get(node_type) else {
            return Offerings::default();
        };
        let cfg = &t.node_config;
        let markets: &[Market] = match market {
            Market::Spot if cfg.on_demand_fallback => &[Market::Spot, Market::OnDemand],
            Market::Spot => &[Market::Spot],
            Market::OnDemand => &[Market::OnDemand],
        };
        let types: Vec<String> =
            if cfg.instance_types.is_empty() { vec![String::new()] } else { cfg.instance_types.clone() };
        let zones: Vec<Option<String>> = if spec.provider.availability_zones.is_empty() {
            vec![None]
        } else {
            spec.provider.availability_zones.iter().cloned().map(Some).collect()
        };
        let mut out = Offerings::default();
        for &m in markets {
            for it in &types {
                for z in &zones {
                    let o = Offering { market: m, instance_type: it.clone(), zone: z.clone() };
                    match self.unavailable(&o, now) {
                        Some(e) => out.skipped.push(Skip { offering: o, error: e.error, until: e.until }),
                        None => {
                            out.skipped.extend(self.zones_short_of(&o, now));
                            out.usable.push(o)
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn spec(market: &str, fallback: bool) -> ClusterSpec {
        let y = format!(
            r#"
cluster_name: cap
provider: {{type: aws, region: us-west-2, availability_zones: [us-west-2a, us-west-2b]}}
storage: {{bucket: cap-bucket}}
head_node_type: head
available_node_types:
  head:
    resources: {{CPU: 0}}
    node_config: {{instance_types: [m7i.xlarge]}}
  x86:
    resources: {{CPU: 8, Intel: 1}}
    node_config:
      instance_types: [r7i.2xlarge, m7i.2xlarge]
      market: {market}
      on_demand_fallback: {fallback}
"#
        );
        ClusterSpec::from_yaml("cap.yaml", &y).unwrap_or_else(|d| panic!("{d}"))
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, h, m, 0).unwrap()
    }

    fn names(o: &[Offering]) -> Vec<String> {
        o.iter().map(|o| o.to_string()).collect()
    }

    #[test]
    fn spot_first_then_on_demand_in_spec_order() {
        let s = spec("spot", true);
        let o = CapacityCache::new().offerings(&s, "x86", Market::Spot, at(21, 0));
        assert_eq!(
            names(&o.usable),
            [
                "r7i.2xlarge spot us-west-2a",
                "r7i.2xlarge spot us-west-2b",
                "m7i.2xlarge spot us-west-2a",
                "m7i.2xlarge spot us-west-2b",
                "r7i.2xlarge on-demand us-west-2a",
                "r7i.2xlarge on-demand us-west-2b",
                "m7i.2xlarge on-demand us-west-2a",
                "m7i.2xlarge on-demand us-west-2b",
            ]
        );
        // No fallback: spot only. On-demand asked (on_demand_base): on-demand only.
        assert_eq!(CapacityCache::new().offerings(&spec("spot", false), "x86", Market::Spot, at(21, 0)).usable.len(), 4);
        let od = CapacityCache::new().offerings(&s, "x86", Market::OnDemand, at(21, 0));
        assert!(od.usable.iter().all(|o| o.market == Market::OnDemand) && od.usable.len() == 4);
    }

    #[test]
    fn without_configured_zones_a_shortage_in_one_zone_leaves_the_type_usable_elsewhere() {
        let mut s = spec("spot", false);
        s.provider.availability_zones.clear();
        let mut c = CapacityCache::new();
        let r7i_a = Offering { market: Market::Spot, instance_type: "r7i.2xlarge".into(), zone: Some("us-west-2a".into()) };
        c.record(r7i_a.clone(), CapacityError::QuotaExceeded, at(21, 11));
        let o = c.offerings(&s, "x86", Market::Spot, at(21, 12));
        assert_eq!(names(&o.usable), ["r7i.2xlarge spot", "m7i.2xlarge spot"], "the type stays usable in every other zone");
        let skips: Vec<String> = o.skipped.iter().map(|s| s.to_string()).collect();
        assert_eq!(skips, ["skip r7i.2xlarge spot us-west-2a: quota exceeded until 21:14"], "the zone that failed is left out");
        assert!(c.offerings(&s, "x86", Market::Spot, at(21, 14)).skipped.is_empty(), "until the entry expires");
    }

    #[test]
    fn errors_skip_offerings_until_they_expire() {
        let s = spec("spot", true);
        let mut c = CapacityCache::new();
        let r7i_a = Offering { market: Market::Spot, instance_type: "r7i.2xlarge".into(), zone: Some("us-west-2a".into()) };
        let until = c.record(r7i_a.clone(), CapacityError::InsufficientCapacity, at(21, 11));
        assert_eq!(until, at(21, 14));
        // A zone-less entry blocks the (market, type) everywhere.
        c.record(
            Offering { market: Market::Spot, instance_type: "m7i.2xlarge".into(), zone: None },
            CapacityError::SpotUnavailable,
            at(21, 12),
        );
        let o = c.offerings(&s, "x86", Market::Spot, at(21, 13));
        let skips: Vec<String> = o.skipped.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            skips,
            [
                "skip r7i.2xlarge spot us-west-2a: insufficient capacity until 21:14",
                "skip m7i.2xlarge spot us-west-2a: spot capacity unavailable until 21:15",
                "skip m7i.2xlarge spot us-west-2b: spot capacity unavailable until 21:15",
            ]
        );
        assert_eq!(names(&o.usable)[0], "r7i.2xlarge spot us-west-2b");
        assert_eq!(o.usable.len(), 5);

        // At 21:14 the first entry has expired: r7i spot us-west-2a is first again.
        let o = c.offerings(&s, "x86", Market::Spot, at(21, 14));
        assert_eq!(names(&o.usable)[0], "r7i.2xlarge spot us-west-2a");
        assert_eq!(c.expire(at(21, 14)).len(), 1);
        assert_eq!(c.entries().len(), 1);
        assert!(c.unavailable(&r7i_a, at(21, 14)).is_none());
        assert_eq!(c.expire(at(21, 15)).len(), 1);
        assert!(c.entries().is_empty());
    }

    #[test]
    fn every_spot_offering_short_falls_back_to_on_demand() {
        let s = spec("spot", true);
        let mut c = CapacityCache::new();
        for it in ["r7i.2xlarge", "m7i.2xlarge"] {
            c.record(Offering { market: Market::Spot, instance_type: it.into(), zone: None }, CapacityError::SpotUnavailable, at(9, 0));
        }
        let o = c.offerings(&s, "x86", Market::Spot, at(9, 1));
        assert_eq!(o.skipped.len(), 4);
        assert_eq!(names(&o.usable)[0], "r7i.2xlarge on-demand us-west-2a");
        // Without fallback nothing is usable.
        assert!(c.offerings(&spec("spot", false), "x86", Market::Spot, at(9, 1)).usable.is_empty());
    }
}
