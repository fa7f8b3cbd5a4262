//! Test support for the EC2 launch boundary: a capacity shortage injector (moto never
//! runs out of capacity) and a recorder of the launch requests EC2 receives, an SDK
//! interceptor that reads each CreateFleet / RunInstances input as the SDK sends it.

use std::sync::{Arc, Mutex};

use aws_sdk_ec2::operation::create_fleet::CreateFleetInput;
use aws_sdk_ec2::operation::run_instances::RunInstancesInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use fleetform::autoscaler::Offering;
use fleetform::aws::{ContextOptions, FaultInjector};
use fleetform_core::spec::Market;

/// Offerings that answer `code` (`InsufficientInstanceCapacity` unless told). A `None`
/// field matches anything.
#[derive(Debug, Clone)]
pub struct CapacityShortage {
    offerings: Vec<(Option<Market>, Option<String>, Option<String>)>,
    code: String,
}

impl CapacityShortage {
    pub fn new() -> Self {
        CapacityShortage {
            offerings: Vec::new(),
            code: "InsufficientInstanceCapacity".into(),
        }
    }
    pub fn offering(
        mut self,
        market: Option<Market>,
        instance_type: Option<&str>,
        zone: Option<&str>,
    ) -> Self {
        self.offerings.push((
            market,
            instance_type.map(str::to_string),
            zone.map(str::to_string),
        ));
        self
    }
    /// Answer another EC2 code (one that is not about capacity makes the launch fail).
    pub fn code(mut self, code: &str) -> Self {
        self.code = code.to_string();
        self
    }
}

impl FaultInjector for CapacityShortage {
    fn launch_error(&self, o: &Offering) -> Option<String> {
        let hit = self.offerings.iter().any(|(m, t, z)| {
            m.is_none_or(|m| m == o.market)
                && t.as_ref().is_none_or(|t| *t == o.instance_type)
                && z.as_ref().is_none_or(|z| o.zone.as_ref() == Some(z))
        });
        hit.then(|| self.code.clone())
    }
}

/// One launch request as EC2 received it: the market, and (instance type, subnet) per
/// override (CreateFleet) or for the one offering (RunInstances).
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchRequest {
    pub market: Market,
    pub count: i32,
    pub offerings: Vec<(String, String)>,
}

/// Records every CreateFleet and RunInstances request of the clients it is given to.
#[derive(Debug, Clone, Default)]
pub struct LaunchRecorder(Arc<Mutex<Vec<LaunchRequest>>>);

impl LaunchRecorder {
    pub fn options(&self) -> ContextOptions {
        ContextOptions {
            interceptors: vec![SharedInterceptor::new(self.clone())],
        }
    }
    pub fn take(&self) -> Vec<LaunchRequest> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Intercept for LaunchRecorder {
    fn name(&self) -> &'static str {
        "LaunchRecorder"
    }
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        if let Some(f) = input.downcast_ref::<CreateFleetInput>() {
            let spot = f
                .target_capacity_specification()
                .and_then(|t| t.spot_target_capacity())
                .unwrap_or(0);
            let offerings = f
                .launch_template_configs()
                .iter()
                .flat_map(|c| c.overrides())
                .map(|o| {
                    let t = o
                        .instance_type()
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_default();
                    (t, o.subnet_id().unwrap_or_default().to_string())
                })
                .collect();
            let market = if spot > 0 {
                Market::Spot
            } else {
                Market::OnDemand
            };
            let count = f
                .target_capacity_specification()
                .and_then(|t| t.total_target_capacity())
                .unwrap_or(0);
            self.0.lock().unwrap().push(LaunchRequest {
                market,
                count,
                offerings,
            });
        } else if let Some(r) = input.downcast_ref::<RunInstancesInput>() {
            let t = r
                .instance_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default();
            let subnet = r
                .network_interfaces()
                .first()
                .and_then(|n| n.subnet_id())
                .unwrap_or_default()
                .to_string();
            let market = if r.instance_market_options().is_some() {
                Market::Spot
            } else {
                Market::OnDemand
            };
            self.0.lock().unwrap().push(LaunchRequest {
                market,
                count: r.max_count().unwrap_or(0),
                offerings: vec![(t, subnet)],
            });
        }
        Ok(())
    }
}
