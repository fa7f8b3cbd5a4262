//! Test support for the EC2 launch boundary: a capacity shortage injector (moto never
//! runs out of capacity) and a recorder of the launch requests EC2 receives, an SDK
//! interceptor that reads each CreateFleet / RunInstances input as the SDK sends it, and
//! EC2 an hour after a termination (`ForgetTerminated`: DescribeInstances no longer lists
//! terminated instances, which moto lists for ever).

use std::sync::{Arc, Mutex};

use aws_sdk_ec2::operation::create_fleet::CreateFleetInput;
use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::operation::run_instances::RunInstancesInput;
use aws_sdk_ec2::operation::terminate_instances::TerminateInstancesInput;
use aws_sdk_ec2::types::{InstanceStateName, Reservation};
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextMut;
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
    /// Offerings that answer a code of their own (`offering_code`), looked at first.
    coded: Vec<((Option<Market>, Option<String>, Option<String>), String)>,
}

impl CapacityShortage {
    pub fn new() -> Self {
        CapacityShortage {
            offerings: Vec::new(),
            code: "InsufficientInstanceCapacity".into(),
            coded: Vec::new(),
        }
    }
    /// An offering that answers `code` whatever `code()` says for the others.
    pub fn offering_code(mut self, market: Option<Market>, instance_type: Option<&str>, zone: Option<&str>, code: &str) -> Self {
        let key = (market, instance_type.map(str::to_string), zone.map(str::to_string));
        self.coded.push((key, code.to_string()));
        self
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
        let matches = |(m, t, z): &(Option<Market>, Option<String>, Option<String>)| {
            m.is_none_or(|m| m == o.market)
                && t.as_ref().is_none_or(|t| *t == o.instance_type)
                && z.as_ref().is_none_or(|z| o.zone.as_ref() == Some(z))
        };
        if let Some((_, code)) = self.coded.iter().find(|(key, _)| matches(key)) {
            return Some(code.clone());
        }
        self.offerings.iter().any(matches).then(|| self.code.clone())
    }
}

/// One launch request as EC2 received it: the market, and (instance type, subnet) per
/// override (CreateFleet) or for the one offering (RunInstances).
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchRequest {
    pub market: Market,
    pub count: i32,
    pub offerings: Vec<(String, String)>,
    pub client_token: String,
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
                client_token: f.client_token().unwrap_or_default().to_string(),
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
                client_token: r.client_token().unwrap_or_default().to_string(),
            });
        }
        Ok(())
    }
}

/// Records the instance ids of every TerminateInstances request, in order.
#[derive(Debug, Clone, Default)]
pub struct TerminationRecorder(Arc<Mutex<Vec<Vec<String>>>>);

impl TerminationRecorder {
    pub fn options(&self) -> ContextOptions {
        ContextOptions { interceptors: vec![SharedInterceptor::new(self.clone())] }
    }
    pub fn take(&self) -> Vec<Vec<String>> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Intercept for TerminationRecorder {
    fn name(&self) -> &'static str {
        "TerminationRecorder"
    }
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(t) = context.input().downcast_ref::<TerminateInstancesInput>() {
            self.0.lock().unwrap().push(t.instance_ids().to_vec());
        }
        Ok(())
    }
}

/// EC2 about an hour after a termination: DescribeInstances no longer lists terminated
/// instances (moto keeps them for ever), while EC2 still remembers the ClientToken that
/// launched them for at least a day.
#[derive(Debug, Clone, Default)]
pub struct ForgetTerminated;

impl ForgetTerminated {
    pub fn shared(&self) -> SharedInterceptor {
        SharedInterceptor::new(self.clone())
    }
}

impl Intercept for ForgetTerminated {
    fn name(&self) -> &'static str {
        "ForgetTerminated"
    }
    fn modify_before_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Ok(output)) = context.output_or_error_mut() else {
            return Ok(());
        };
        let Some(out) = output.downcast_mut::<DescribeInstancesOutput>() else {
            return Ok(());
        };
        let live = |r: &Reservation| {
            let instances = r
                .instances()
                .iter()
                .filter(|i| i.state().and_then(|s| s.name()) != Some(&InstanceStateName::Terminated))
                .cloned()
                .collect();
            Reservation::builder()
                .set_reservation_id(r.reservation_id().map(str::to_string))
                .set_owner_id(r.owner_id().map(str::to_string))
                .set_instances(Some(instances))
                .build()
        };
        let reservations = out.reservations().iter().map(live).collect();
        *out = DescribeInstancesOutput::builder()
            .set_reservations(Some(reservations))
            .set_next_token(out.next_token().map(str::to_string))
            .build();
        Ok(())
    }
}
