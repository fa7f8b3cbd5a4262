//! Test support for the EC2 launch boundary, all of it SDK interceptors on the clients: a
//! capacity shortage injector (moto never runs out of capacity), a recorder of the launch
//! requests EC2 receives, which reads each CreateFleet / RunInstances input as the SDK
//! sends it, and EC2 an hour after a termination (`ForgetTerminated`: DescribeInstances no longer lists
//! terminated instances, which moto lists for ever).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_ec2::operation::create_fleet::{CreateFleetInput, CreateFleetOutput};
use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::operation::run_instances::RunInstancesInput;
use aws_sdk_ec2::operation::terminate_instances::TerminateInstancesInput;
use aws_sdk_ec2::types::{
    CreateFleetError, FleetLaunchTemplateOverrides, FleetLaunchTemplateOverridesRequest, InstanceLifecycle,
    InstanceStateName, LaunchTemplateAndOverridesResponse, Reservation,
};
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeSerializationInterceptorContextMut, Output,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextMut;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use fleetform::aws::ContextOptions;
use fleetform_core::spec::Market;

/// Offerings that answer `code` (`InsufficientInstanceCapacity` unless told), an SDK
/// interceptor on the EC2 client. A `None` field matches anything. EC2 answers a spot
/// shortage inside CreateFleet's result (one error per override it could not launch) and
/// an on-demand one as RunInstances' error, so that is what this does: it takes the failing
/// overrides out of a CreateFleet before it is sent (sending none when none is left) and
/// adds their errors to the answer; a failing RunInstances goes as a dry run (moto launches
/// nothing) and its answer is replaced by EC2's error. Requests name subnets and offerings
/// zones: [`CapacityShortage::learn_zones`] gives it the network's subnets.
#[derive(Debug, Clone)]
pub struct CapacityShortage {
    offerings: Vec<(Option<Market>, Option<String>, Option<String>)>,
    code: String,
    /// Offerings that answer a code of their own (`offering_code`), looked at first.
    coded: Vec<((Option<Market>, Option<String>, Option<String>), String)>,
    /// The zone of each subnet.
    zones: Arc<Mutex<HashMap<String, String>>>,
}

impl CapacityShortage {
    pub fn new() -> Self {
        CapacityShortage {
            offerings: Vec::new(),
            code: "InsufficientInstanceCapacity".into(),
            coded: Vec::new(),
            zones: Arc::default(),
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
    /// The (subnet, zone) pairs of the cluster's network (`placement::network`).
    pub fn learn_zones(&self, subnets: &[(String, String)]) {
        self.zones.lock().unwrap().extend(subnets.iter().cloned());
    }
    /// Put on every client of a context.
    pub fn interceptor(&self) -> SharedInterceptor {
        SharedInterceptor::new(self.clone())
    }

    /// The code launching `instance_type` on `market` into `subnet` answers, if any.
    fn launch_error(&self, market: Market, instance_type: &str, subnet: &str) -> Option<String> {
        let zone = self.zones.lock().unwrap().get(subnet).cloned();
        let matches = |(m, t, z): &(Option<Market>, Option<String>, Option<String>)| {
            m.is_none_or(|m| m == market)
                && t.as_ref().is_none_or(|t| t == instance_type)
                && z.as_ref().is_none_or(|z| zone.as_ref() == Some(z))
        };
        if let Some((_, code)) = self.coded.iter().find(|(key, _)| matches(key)) {
            return Some(code.clone());
        }
        self.offerings.iter().any(matches).then(|| self.code.clone())
    }

    /// Takes the failing overrides out of a spot CreateFleet; returns their errors.
    fn fail_overrides(&self, f: &mut CreateFleetInput) -> Vec<CreateFleetError> {
        let mut errors = Vec::new();
        for config in f.launch_template_configs.iter_mut().flatten() {
            let overrides = config.overrides.take().unwrap_or_default();
            let (failing, kept): (Vec<_>, Vec<_>) = overrides.into_iter().partition(|o| {
                let t = o.instance_type().map(|t| t.as_str()).unwrap_or_default();
                self.launch_error(Market::Spot, t, o.subnet_id().unwrap_or_default()).is_some()
            });
            for o in failing {
                let t = o.instance_type().map(|t| t.as_str()).unwrap_or_default();
                let code = self.launch_error(Market::Spot, t, o.subnet_id().unwrap_or_default()).unwrap_or_default();
                errors.push(fleet_error(&o, &code));
            }
            config.overrides = Some(kept);
        }
        errors
    }
}

/// An error of a CreateFleet answer, as EC2 gives it for an override it could not launch.
fn fleet_error(o: &FleetLaunchTemplateOverridesRequest, code: &str) -> CreateFleetError {
    let overrides = FleetLaunchTemplateOverrides::builder()
        .set_instance_type(o.instance_type().cloned())
        .set_subnet_id(o.subnet_id().map(str::to_string))
        .build();
    CreateFleetError::builder()
        .launch_template_and_overrides(LaunchTemplateAndOverridesResponse::builder().overrides(overrides).build())
        .lifecycle(InstanceLifecycle::Spot)
        .error_code(code)
        .error_message(format!("{code} (injected by the test)"))
        .build()
}

/// The answers a CreateFleet gets besides EC2's, and whether EC2 got the request at all.
#[derive(Debug, Clone)]
struct InjectedFleetErrors {
    errors: Vec<CreateFleetError>,
    sent: bool,
}
impl Storable for InjectedFleetErrors {
    type Storer = StoreReplace<Self>;
}

/// The code a RunInstances sent as a dry run answers.
#[derive(Debug, Clone)]
struct InjectedRunError(String);
impl Storable for InjectedRunError {
    type Storer = StoreReplace<Self>;
}

impl Intercept for CapacityShortage {
    fn name(&self) -> &'static str {
        "CapacityShortage"
    }
    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(f) = context.input_mut().downcast_mut::<CreateFleetInput>() {
            let errors = self.fail_overrides(f);
            if errors.is_empty() {
                return Ok(());
            }
            let sent = f.launch_template_configs().iter().any(|c| !c.overrides().is_empty());
            cfg.interceptor_state().store_put(InjectedFleetErrors { errors, sent });
            // Nothing left to launch: EC2 would answer with the errors alone.
            return if sent { Ok(()) } else { Err("every override fails (injected)".into()) };
        }
        if let Some(r) = context.input_mut().downcast_mut::<RunInstancesInput>() {
            let market = if r.instance_market_options().is_some() { Market::Spot } else { Market::OnDemand };
            let t = r.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default();
            let subnet = r.network_interfaces().first().and_then(|n| n.subnet_id()).unwrap_or_default().to_string();
            if let Some(code) = self.launch_error(market, &t, &subnet) {
                r.dry_run = Some(true);
                cfg.interceptor_state().store_put(InjectedRunError(code));
            }
        }
        Ok(())
    }
    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(InjectedRunError(code)) = cfg.load::<InjectedRunError>() {
            let body = format!(
                "<Response><Errors><Error><Code>{code}</Code><Message>{code} (injected by the test)</Message></Error></Errors>\
                 <RequestID>injected</RequestID></Response>"
            );
            *context.response_mut() = HttpResponse::new(StatusCode::try_from(400u16)?, SdkBody::from(body));
        }
        Ok(())
    }
    fn modify_before_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(injected) = cfg.load::<InjectedFleetErrors>().cloned() else {
            return Ok(());
        };
        let Some(result) = context.output_or_error_mut() else {
            return Ok(());
        };
        let answered = match result {
            Ok(output) => output.downcast_ref::<CreateFleetOutput>().cloned(),
            Err(_) if !injected.sent => Some(CreateFleetOutput::builder().build()),
            Err(_) => None,
        };
        if let Some(out) = answered {
            let errors = injected.errors.into_iter().chain(out.errors().iter().cloned()).collect();
            let out = CreateFleetOutput::builder()
                .set_fleet_id(out.fleet_id().map(str::to_string))
                .set_instances(Some(out.instances().to_vec()))
                .set_errors(Some(errors))
                .build();
            *result = Ok(Output::erase(out));
        }
        Ok(())
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
        } else if let Some(r) = input.downcast_ref::<RunInstancesInput>().filter(|r| r.dry_run() != Some(true)) {
            // A dry run (the fault injector's) launches nothing.
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
