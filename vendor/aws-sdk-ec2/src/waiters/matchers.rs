

/// Matcher union: {"output":{"path":"Reservations[].Instances[].State.Name","expected":"stopping","comparator":"anyStringEquals"}}
pub(crate) fn match_describe_instances_5a7237d16cf0a4b1f(
    _result: ::std::result::Result<
        &crate::operation::describe_instances::DescribeInstancesOutput,
        &crate::operation::describe_instances::DescribeInstancesError,
    >,
) -> bool {
    fn path_traversal<'a>(
        _output: &'a crate::operation::describe_instances::DescribeInstancesOutput,
    ) -> ::std::option::Option<::std::vec::Vec<&'a crate::types::InstanceStateName>> {
        let _fld_1 = _output.reservations.as_ref()?;
        let _prj_3 = _fld_1
            .iter()
            .flat_map(|v| {
                #[allow(clippy::let_and_return)]
                fn map(_v: &crate::types::Reservation) -> ::std::option::Option<&::std::vec::Vec<crate::types::Instance>> {
                    let _fld_2 = _v.instances.as_ref();
                    _fld_2
                }
                map(v)
            })
            .flatten()
            .collect::<::std::vec::Vec<_>>();
        let _prj_6 = _prj_3
            .iter()
            .flat_map(|v| {
                #[allow(clippy::let_and_return)]
                fn map(_v: &crate::types::Instance) -> ::std::option::Option<&crate::types::InstanceStateName> {
                    let _fld_4 = _v.state.as_ref();
                    let _fld_5 = _fld_4.and_then(|v| v.name.as_ref());
                    _fld_5
                }
                map(v)
            })
            .collect::<::std::vec::Vec<_>>();
        ::std::option::Option::Some(_prj_6)
    }
    _result
        .as_ref()
        .ok()
        .and_then(|output| path_traversal(output))
        .map(|value| {
            value.iter().any(|value| {
                let _tmp_2 = value.as_str();
                let right = "stopping";
                let _cmp_1 = _tmp_2 == right;
                _cmp_1
            })
        })
        .unwrap_or_default()
}

/// Matcher union: {"output":{"path":"Reservations[].Instances[].State.Name","expected":"pending","comparator":"anyStringEquals"}}
pub(crate) fn match_describe_instances_8ad0c8f11617c2bd6(
    _result: ::std::result::Result<
        &crate::operation::describe_instances::DescribeInstancesOutput,
        &crate::operation::describe_instances::DescribeInstancesError,
    >,
) -> bool {
    fn path_traversal<'a>(
        _output: &'a crate::operation::describe_instances::DescribeInstancesOutput,
    ) -> ::std::option::Option<::std::vec::Vec<&'a crate::types::InstanceStateName>> {
        let _fld_1 = _output.reservations.as_ref()?;
        let _prj_3 = _fld_1
            .iter()
            .flat_map(|v| {
                #[allow(clippy::let_and_return)]
                fn map(_v: &crate::types::Reservation) -> ::std::option::Option<&::std::vec::Vec<crate::types::Instance>> {
                    let _fld_2 = _v.instances.as_ref();
                    _fld_2
                }
                map(v)
            })
            .flatten()
            .collect::<::std::vec::Vec<_>>();
        let _prj_6 = _prj_3
            .iter()
            .flat_map(|v| {
                #[allow(clippy::let_and_return)]
                fn map(_v: &crate::types::Instance) -> ::std::option::Option<&crate::types::InstanceStateName> {
                    let _fld_4 = _v.state.as_ref();
                    let _fld_5 = _fld_4.and_then(|v| v.name.as_ref());
                    _fld_5
                }
                map(v)
            })
            .collect::<::std::vec::Vec<_>>();
        ::std::option::Option::Some(_prj_6)
    }
    _result
        .as_ref()
        .ok()
        .and_then(|output| path_traversal(output))
        .map(|value| {
            value.iter().any(|value| {
                let _tmp_2 = value.as_str();
                let right = "pending";
                let _cmp_1 = _tmp_2 == right;
                _cmp_1
            })
        })
        .unwrap_or_default()
}

/// Matcher union: {"output":{"path":"Reservations[].Instances[].State.Name","expected":"terminated","comparator":"allStringEquals"}}
pub(crate) fn match_describe_instances_68add750ed2efbe82(
    _result: ::std::result::Result<
        &crate::operation::describe_instances::DescribeInstancesOutput,
        &crate::operation::describe_instances::DescribeInstancesError,
    >,
) -> bool {
    fn path_traversal<'a>(
        _output: &'a crate::operation::describe_instances::DescribeInstancesOutput,
    ) -> ::std::option::Option<::std::vec::Vec<&'a crate::types::InstanceStateName>> {
        let _fld_1 = _output.reservations.as_ref()?;
        let _prj_3 = _fld_1
            .iter()
            .flat_map(|v| {
                #[allow(clippy::let_and_return)]
                fn map(_v: &crate::types::Reservation) -> ::std::option::Option<&::std::vec::Vec<crate::types::Instance>> {
                    let _fld_2 = _v.instances.as_ref();
                    _fld_2
                }
                map(v)
            })
            .flatten()
            .collect::<::std::vec::Vec<_>>();
        let _prj_6 = _prj_3
            .iter()
            .flat_map(|v| {
                #[allow(clippy::let_and_return)]
                fn map(_v: &crate::types::Instance) -> ::std::option::Option<&crate::types::InstanceStateName> {
                    let _fld_4 = _v.state.as_ref();
                    let _fld_5 = _fld_4.and_then(|v| v.name.as_ref());
                    _fld_5
                }
                map(v)
            })
            .collect::<::std::vec::Vec<_>>();
        ::std::option::Option::Some(_prj_6)
    }
    _result
        .as_ref()
        .ok()
        .and_then(|output| path_traversal(output))
        .map(|value| {
            !value.is_empty()
                && value.iter().all(|value| {
                    let _tmp_2 = value.as_str();
                    let right = "terminated";
                    let _cmp_1 = _tmp_2 == right;
                    _cmp_1
                })
        })
        .unwrap_or_default()
}

/// Matcher union: {"errorType":"NatGatewayNotFound"}
pub(crate) fn match_describe_nat_gateways_6513b45eeacbec860(
    _result: ::std::result::Result<
        &crate::operation::describe_nat_gateways::DescribeNatGatewaysOutput,
        &crate::operation::describe_nat_gateways::DescribeNatGatewaysError,
    >,
) -> bool {
    if let ::std::result::Result::Err(err) = _result {
        if let ::std::option::Option::Some(code) = ::aws_smithy_types::error::metadata::ProvideErrorMetadata::code(err) {
            return code == "NatGatewayNotFound";
        }
    }
    false
}

/// Matcher union: {"output":{"path":"NatGateways[].State","expected":"deleted","comparator":"allStringEquals"}}
pub(crate) fn match_describe_nat_gateways_943e6d2c961eea64d(
    _result: ::std::result::Result<
        &crate::operation::describe_nat_gateways::DescribeNatGatewaysOutput,
        &crate::operation::describe_nat_gateways::DescribeNatGatewaysError,
    >,
) -> bool {
    fn path_traversal<'a>(
        _output: &'a crate::operation::describe_nat_gateways::DescribeNatGatewaysOutput,
    ) -> ::std::option::Option<::std::vec::Vec<&'a crate::types::NatGatewayState>> {
        let _fld_1 = _output.nat_gateways.as_ref()?;
        let _prj_3 = _fld_1
            .iter()
            .flat_map(|v| {
                #[allow(clippy::let_and_return)]
                fn map(_v: &crate::types::NatGateway) -> ::std::option::Option<&crate::types::NatGatewayState> {
                    let _fld_2 = _v.state.as_ref();
                    _fld_2
                }
                map(v)
            })
            .collect::<::std::vec::Vec<_>>();
        ::std::option::Option::Some(_prj_3)
    }
    _result
        .as_ref()
        .ok()
        .and_then(|output| path_traversal(output))
        .map(|value| {
            !value.is_empty()
                && value.iter().all(|value| {
                    let _tmp_2 = value.as_str();
                    let right = "deleted";
                    let _cmp_1 = _tmp_2 == right;
                    _cmp_1
                })
        })
        .unwrap_or_default()
}
