
pub use crate::types::_iam_instance_profile_specification::IamInstanceProfileSpecificationBuilder;

pub use crate::types::_route_table_association_state::RouteTableAssociationStateBuilder;

pub use crate::types::_subnet_ipv6_cidr_block_association::SubnetIpv6CidrBlockAssociationBuilder;

pub use crate::types::_vpc_ipv6_cidr_block_association::VpcIpv6CidrBlockAssociationBuilder;

pub use crate::types::_vpc_cidr_block_association::VpcCidrBlockAssociationBuilder;

pub use crate::types::_instance_requirements_request::InstanceRequirementsRequestBuilder;

pub use crate::types::_subnet::SubnetBuilder;

pub use crate::types::_vpc::VpcBuilder;

pub use crate::types::_spot_options_request::SpotOptionsRequestBuilder;

pub use crate::types::_on_demand_options_request::OnDemandOptionsRequestBuilder;

pub use crate::types::_reserved_capacity_options_request::ReservedCapacityOptionsRequestBuilder;

pub use crate::types::_target_capacity_specification_request::TargetCapacitySpecificationRequestBuilder;

pub use crate::types::_ec2_instance_connect_endpoint::Ec2InstanceConnectEndpointBuilder;

pub use crate::types::_internet_gateway::InternetGatewayBuilder;

pub use crate::types::_request_launch_template_data::RequestLaunchTemplateDataBuilder;

pub use crate::types::_operator_request::OperatorRequestBuilder;

pub use crate::types::_launch_template::LaunchTemplateBuilder;

pub use crate::types::_validation_warning::ValidationWarningBuilder;

pub use crate::types::_launch_template_version::LaunchTemplateVersionBuilder;

pub use crate::types::_nat_gateway::NatGatewayBuilder;

pub use crate::types::_connection_tracking_specification_request::ConnectionTrackingSpecificationRequestBuilder;

pub use crate::types::_network_interface::NetworkInterfaceBuilder;

pub use crate::types::_route_table::RouteTableBuilder;

pub use crate::types::_operator_response::OperatorResponseBuilder;

pub use crate::types::_vpc_encryption_control_configuration::VpcEncryptionControlConfigurationBuilder;

pub use crate::types::_vpc_encryption_control::VpcEncryptionControlBuilder;

pub use crate::types::_dns_options_specification::DnsOptionsSpecificationBuilder;

pub use crate::types::_vpc_endpoint::VpcEndpointBuilder;

pub use crate::types::_enclave_options::EnclaveOptionsBuilder;

pub use crate::types::_network_interface_attachment::NetworkInterfaceAttachmentBuilder;

pub use crate::types::_response_launch_template_data::ResponseLaunchTemplateDataBuilder;

pub use crate::types::_enclave_options_request::EnclaveOptionsRequestBuilder;

pub use crate::types::_capacity_reservation_specification::CapacityReservationSpecificationBuilder;

pub use crate::types::_instance_metadata_options_response::InstanceMetadataOptionsResponseBuilder;

pub use crate::types::_run_instances_monitoring_enabled::RunInstancesMonitoringEnabledBuilder;

pub use crate::types::_placement::PlacementBuilder;

pub use crate::types::_launch_template_specification::LaunchTemplateSpecificationBuilder;

pub use crate::types::_instance_market_options_request::InstanceMarketOptionsRequestBuilder;

pub use crate::types::_credit_specification_request::CreditSpecificationRequestBuilder;

pub use crate::types::_cpu_options_request::CpuOptionsRequestBuilder;

pub use crate::types::_hibernation_options_request::HibernationOptionsRequestBuilder;

pub use crate::types::_instance_metadata_options_request::InstanceMetadataOptionsRequestBuilder;

pub use crate::types::_private_dns_name_options_request::PrivateDnsNameOptionsRequestBuilder;

pub use crate::types::_instance_maintenance_options_request::InstanceMaintenanceOptionsRequestBuilder;

pub use crate::types::_instance_network_performance_options_request::InstanceNetworkPerformanceOptionsRequestBuilder;

pub use crate::types::_tag_specification::TagSpecificationBuilder;

pub use crate::types::_unsuccessful_item::UnsuccessfulItemBuilder;

pub use crate::types::_ipv4_prefix_specification::Ipv4PrefixSpecificationBuilder;

pub use crate::types::_nat_gateway_address::NatGatewayAddressBuilder;

pub use crate::types::_iam_instance_profile::IamInstanceProfileBuilder;

pub use crate::types::_subnet_cidr_block_state::SubnetCidrBlockStateBuilder;

pub use crate::types::_vpc_cidr_block_state::VpcCidrBlockStateBuilder;

pub use crate::types::_ip_permission::IpPermissionBuilder;

pub use crate::types::_tag::TagBuilder;

pub use crate::types::_v_cpu_count_range_request::VCpuCountRangeRequestBuilder;

pub use crate::types::_memory_mib_request::MemoryMiBRequestBuilder;

pub use crate::types::_memory_gib_per_v_cpu_request::MemoryGiBPerVCpuRequestBuilder;

pub use crate::types::_network_interface_count_request::NetworkInterfaceCountRequestBuilder;

pub use crate::types::_total_local_storage_gb_request::TotalLocalStorageGbRequestBuilder;

pub use crate::types::_baseline_ebs_bandwidth_mbps_request::BaselineEbsBandwidthMbpsRequestBuilder;

pub use crate::types::_accelerator_count_request::AcceleratorCountRequestBuilder;

pub use crate::types::_accelerator_total_memory_mib_request::AcceleratorTotalMemoryMiBRequestBuilder;

pub use crate::types::_network_bandwidth_gbps_request::NetworkBandwidthGbpsRequestBuilder;

pub use crate::types::_baseline_performance_factors_request::BaselinePerformanceFactorsRequestBuilder;

pub use crate::types::_private_dns_name_options_on_launch::PrivateDnsNameOptionsOnLaunchBuilder;

pub use crate::types::_block_public_access_states::BlockPublicAccessStatesBuilder;

pub use crate::types::_fleet_spot_maintenance_strategies_request::FleetSpotMaintenanceStrategiesRequestBuilder;

pub use crate::types::_capacity_reservation_options_request::CapacityReservationOptionsRequestBuilder;

pub use crate::types::_fleet_capacity_reservation_target_request::FleetCapacityReservationTargetRequestBuilder;

pub use crate::types::_reserved_capacity_fallback_options_request::ReservedCapacityFallbackOptionsRequestBuilder;

pub use crate::types::_fleet_launch_template_config_request::FleetLaunchTemplateConfigRequestBuilder;

pub use crate::types::_create_fleet_error::CreateFleetErrorBuilder;

pub use crate::types::_create_fleet_instance::CreateFleetInstanceBuilder;

pub use crate::types::_block_device_mapping::BlockDeviceMappingBuilder;

pub use crate::types::_instance_connect_endpoint_public_dns_names::InstanceConnectEndpointPublicDnsNamesBuilder;

pub use crate::types::_launch_template_iam_instance_profile_specification_request::LaunchTemplateIamInstanceProfileSpecificationRequestBuilder;

pub use crate::types::_launch_templates_monitoring_request::LaunchTemplatesMonitoringRequestBuilder;

pub use crate::types::_launch_template_placement_request::LaunchTemplatePlacementRequestBuilder;

pub use crate::types::_launch_template_instance_market_options_request::LaunchTemplateInstanceMarketOptionsRequestBuilder;

pub use crate::types::_launch_template_cpu_options_request::LaunchTemplateCpuOptionsRequestBuilder;

pub use crate::types::_launch_template_capacity_reservation_specification_request::LaunchTemplateCapacityReservationSpecificationRequestBuilder;

pub use crate::types::_launch_template_hibernation_options_request::LaunchTemplateHibernationOptionsRequestBuilder;

pub use crate::types::_launch_template_instance_metadata_options_request::LaunchTemplateInstanceMetadataOptionsRequestBuilder;

pub use crate::types::_launch_template_enclave_options_request::LaunchTemplateEnclaveOptionsRequestBuilder;

pub use crate::types::_launch_template_private_dns_name_options_request::LaunchTemplatePrivateDnsNameOptionsRequestBuilder;

pub use crate::types::_launch_template_instance_maintenance_options_request::LaunchTemplateInstanceMaintenanceOptionsRequestBuilder;

pub use crate::types::_launch_template_network_performance_options_request::LaunchTemplateNetworkPerformanceOptionsRequestBuilder;

pub use crate::types::_state_reason::StateReasonBuilder;

pub use crate::types::_availability_zone_address::AvailabilityZoneAddressBuilder;

pub use crate::types::_provisioned_bandwidth::ProvisionedBandwidthBuilder;

pub use crate::types::_ipv4_prefix_specification_request::Ipv4PrefixSpecificationRequestBuilder;

pub use crate::types::_ipv6_prefix_specification_request::Ipv6PrefixSpecificationRequestBuilder;

pub use crate::types::_private_ip_address_specification::PrivateIpAddressSpecificationBuilder;

pub use crate::types::_instance_ipv6_address::InstanceIpv6AddressBuilder;

pub use crate::types::_network_interface_association::NetworkInterfaceAssociationBuilder;

pub use crate::types::_connection_tracking_configuration::ConnectionTrackingConfigurationBuilder;

pub use crate::types::_public_ip_dns_name_options::PublicIpDnsNameOptionsBuilder;

pub use crate::types::_vpc_encryption_control_exclusions::VpcEncryptionControlExclusionsBuilder;

pub use crate::types::_subnet_configuration::SubnetConfigurationBuilder;

pub use crate::types::_dns_options::DnsOptionsBuilder;

pub use crate::types::_last_error::LastErrorBuilder;

pub use crate::types::_filter::FilterBuilder;

pub use crate::types::_address::AddressBuilder;

pub use crate::types::_product_code::ProductCodeBuilder;

pub use crate::types::_image::ImageBuilder;

pub use crate::types::_instance_block_device_mapping::InstanceBlockDeviceMappingBuilder;

pub use crate::types::_group_identifier::GroupIdentifierBuilder;

pub use crate::types::_reservation::ReservationBuilder;

pub use crate::types::_attachment_ena_srd_specification::AttachmentEnaSrdSpecificationBuilder;

pub use crate::types::_security_group::SecurityGroupBuilder;

pub use crate::types::_launch_template_iam_instance_profile_specification::LaunchTemplateIamInstanceProfileSpecificationBuilder;

pub use crate::types::_launch_templates_monitoring::LaunchTemplatesMonitoringBuilder;

pub use crate::types::_launch_template_placement::LaunchTemplatePlacementBuilder;

pub use crate::types::_launch_template_instance_market_options::LaunchTemplateInstanceMarketOptionsBuilder;

pub use crate::types::_credit_specification::CreditSpecificationBuilder;

pub use crate::types::_launch_template_cpu_options::LaunchTemplateCpuOptionsBuilder;

pub use crate::types::_launch_template_capacity_reservation_specification_response::LaunchTemplateCapacityReservationSpecificationResponseBuilder;

pub use crate::types::_launch_template_hibernation_options::LaunchTemplateHibernationOptionsBuilder;

pub use crate::types::_launch_template_instance_metadata_options::LaunchTemplateInstanceMetadataOptionsBuilder;

pub use crate::types::_launch_template_enclave_options::LaunchTemplateEnclaveOptionsBuilder;

pub use crate::types::_instance_requirements::InstanceRequirementsBuilder;

pub use crate::types::_launch_template_private_dns_name_options::LaunchTemplatePrivateDnsNameOptionsBuilder;

pub use crate::types::_launch_template_instance_maintenance_options::LaunchTemplateInstanceMaintenanceOptionsBuilder;

pub use crate::types::_launch_template_network_performance_options::LaunchTemplateNetworkPerformanceOptionsBuilder;

pub use crate::types::_capacity_reservation_target::CapacityReservationTargetBuilder;

pub use crate::types::_payer_responsibility_entry::PayerResponsibilityEntryBuilder;

pub use crate::types::_revoked_security_group_rule::RevokedSecurityGroupRuleBuilder;

pub use crate::types::_elastic_gpu_specification::ElasticGpuSpecificationBuilder;

pub use crate::types::_elastic_inference_accelerator::ElasticInferenceAcceleratorBuilder;

pub use crate::types::_spot_market_options::SpotMarketOptionsBuilder;

pub use crate::types::_license_configuration_request::LicenseConfigurationRequestBuilder;

pub use crate::types::_instance_secondary_interface_specification_request::InstanceSecondaryInterfaceSpecificationRequestBuilder;

pub use crate::types::_instance_network_interface_specification::InstanceNetworkInterfaceSpecificationBuilder;

pub use crate::types::_instance::InstanceBuilder;

pub use crate::types::_instance_state_change::InstanceStateChangeBuilder;

pub use crate::types::_unsuccessful_item_error::UnsuccessfulItemErrorBuilder;

pub use crate::types::_cpu_performance_factor_request::CpuPerformanceFactorRequestBuilder;

pub use crate::types::_internet_gateway_attachment::InternetGatewayAttachmentBuilder;

pub use crate::types::_fleet_spot_capacity_rebalance_request::FleetSpotCapacityRebalanceRequestBuilder;

pub use crate::types::_fleet_launch_template_specification_request::FleetLaunchTemplateSpecificationRequestBuilder;

pub use crate::types::_launch_template_and_overrides_response::LaunchTemplateAndOverridesResponseBuilder;

pub use crate::types::_ebs_block_device::EbsBlockDeviceBuilder;

pub use crate::types::_instance_connect_endpoint_dns_names::InstanceConnectEndpointDnsNamesBuilder;

pub use crate::types::_launch_template_block_device_mapping_request::LaunchTemplateBlockDeviceMappingRequestBuilder;

pub use crate::types::_launch_template_instance_network_interface_specification_request::LaunchTemplateInstanceNetworkInterfaceSpecificationRequestBuilder;

pub use crate::types::_launch_template_tag_specification_request::LaunchTemplateTagSpecificationRequestBuilder;

pub use crate::types::_launch_template_elastic_inference_accelerator::LaunchTemplateElasticInferenceAcceleratorBuilder;

pub use crate::types::_launch_template_spot_market_options_request::LaunchTemplateSpotMarketOptionsRequestBuilder;

pub use crate::types::_launch_template_license_configuration_request::LaunchTemplateLicenseConfigurationRequestBuilder;

pub use crate::types::_launch_template_instance_secondary_interface_specification_request::LaunchTemplateInstanceSecondaryInterfaceSpecificationRequestBuilder;

pub use crate::types::_validation_error::ValidationErrorBuilder;

pub use crate::types::_nat_gateway_attached_appliance::NatGatewayAttachedApplianceBuilder;

pub use crate::types::_network_interface_ipv6_address::NetworkInterfaceIpv6AddressBuilder;

pub use crate::types::_network_interface_private_ip_address::NetworkInterfacePrivateIpAddressBuilder;

pub use crate::types::_ipv6_prefix_specification::Ipv6PrefixSpecificationBuilder;

pub use crate::types::_route_table_association::RouteTableAssociationBuilder;

pub use crate::types::_propagating_vgw::PropagatingVgwBuilder;

pub use crate::types::_route::RouteBuilder;

pub use crate::types::_vpc_encryption_control_exclusion::VpcEncryptionControlExclusionBuilder;

pub use crate::types::_security_group_identifier::SecurityGroupIdentifierBuilder;

pub use crate::types::_dns_entry::DnsEntryBuilder;

pub use crate::types::_subnet_ip_prefixes::SubnetIpPrefixesBuilder;

pub use crate::types::_scan_results::ScanResultsBuilder;

pub use crate::types::_instance_type_specification::InstanceTypeSpecificationBuilder;

pub use crate::types::_ebs_instance_block_device::EbsInstanceBlockDeviceBuilder;

pub use crate::types::_instance_state::InstanceStateBuilder;

pub use crate::types::_attachment_ena_srd_udp_specification::AttachmentEnaSrdUdpSpecificationBuilder;

pub use crate::types::_launch_template_block_device_mapping::LaunchTemplateBlockDeviceMappingBuilder;

pub use crate::types::_launch_template_instance_network_interface_specification::LaunchTemplateInstanceNetworkInterfaceSpecificationBuilder;

pub use crate::types::_launch_template_tag_specification::LaunchTemplateTagSpecificationBuilder;

pub use crate::types::_elastic_gpu_specification_response::ElasticGpuSpecificationResponseBuilder;

pub use crate::types::_launch_template_elastic_inference_accelerator_response::LaunchTemplateElasticInferenceAcceleratorResponseBuilder;

pub use crate::types::_launch_template_spot_market_options::LaunchTemplateSpotMarketOptionsBuilder;

pub use crate::types::_capacity_reservation_target_response::CapacityReservationTargetResponseBuilder;

pub use crate::types::_launch_template_license_configuration::LaunchTemplateLicenseConfigurationBuilder;

pub use crate::types::_v_cpu_count_range::VCpuCountRangeBuilder;

pub use crate::types::_memory_mib::MemoryMiBBuilder;

pub use crate::types::_memory_gib_per_v_cpu::MemoryGiBPerVCpuBuilder;

pub use crate::types::_network_interface_count::NetworkInterfaceCountBuilder;

pub use crate::types::_total_local_storage_gb::TotalLocalStorageGbBuilder;

pub use crate::types::_baseline_ebs_bandwidth_mbps::BaselineEbsBandwidthMbpsBuilder;

pub use crate::types::_accelerator_count::AcceleratorCountBuilder;

pub use crate::types::_accelerator_total_memory_mib::AcceleratorTotalMemoryMiBBuilder;

pub use crate::types::_network_bandwidth_gbps::NetworkBandwidthGbpsBuilder;

pub use crate::types::_baseline_performance_factors::BaselinePerformanceFactorsBuilder;

pub use crate::types::_launch_template_instance_secondary_interface_specification::LaunchTemplateInstanceSecondaryInterfaceSpecificationBuilder;

pub use crate::types::_fleet_launch_template_specification::FleetLaunchTemplateSpecificationBuilder;

pub use crate::types::_monitoring::MonitoringBuilder;

pub use crate::types::_ena_srd_specification_request::EnaSrdSpecificationRequestBuilder;

pub use crate::types::_cpu_options::CpuOptionsBuilder;

pub use crate::types::_capacity_reservation_specification_response::CapacityReservationSpecificationResponseBuilder;

pub use crate::types::_hibernation_options::HibernationOptionsBuilder;

pub use crate::types::_private_dns_name_options_response::PrivateDnsNameOptionsResponseBuilder;

pub use crate::types::_instance_maintenance_options::InstanceMaintenanceOptionsBuilder;

pub use crate::types::_instance_network_performance_options::InstanceNetworkPerformanceOptionsBuilder;

pub use crate::types::_user_id_group_pair::UserIdGroupPairBuilder;

pub use crate::types::_ip_range::IpRangeBuilder;

pub use crate::types::_ipv6_range::Ipv6RangeBuilder;

pub use crate::types::_prefix_list_id::PrefixListIdBuilder;

pub use crate::types::_fleet_launch_template_overrides_request::FleetLaunchTemplateOverridesRequestBuilder;

pub use crate::types::_fleet_launch_template_overrides::FleetLaunchTemplateOverridesBuilder;

pub use crate::types::_launch_template_ebs_block_device_request::LaunchTemplateEbsBlockDeviceRequestBuilder;

pub use crate::types::_image_watermark::ImageWatermarkBuilder;

pub use crate::types::_launch_template_ebs_block_device::LaunchTemplateEbsBlockDeviceBuilder;

pub use crate::types::_launch_template_ena_srd_specification::LaunchTemplateEnaSrdSpecificationBuilder;

pub use crate::types::_connection_tracking_specification::ConnectionTrackingSpecificationBuilder;

pub use crate::types::_cpu_performance_factor::CpuPerformanceFactorBuilder;

pub use crate::types::_instance_secondary_interface_private_ip_address_request::InstanceSecondaryInterfacePrivateIpAddressRequestBuilder;

pub use crate::types::_ena_srd_udp_specification_request::EnaSrdUdpSpecificationRequestBuilder;

pub use crate::types::_elastic_gpu_association::ElasticGpuAssociationBuilder;

pub use crate::types::_elastic_inference_accelerator_association::ElasticInferenceAcceleratorAssociationBuilder;

pub use crate::types::_instance_network_interface::InstanceNetworkInterfaceBuilder;

pub use crate::types::_license_configuration::LicenseConfigurationBuilder;

pub use crate::types::_instance_secondary_interface::InstanceSecondaryInterfaceBuilder;

pub use crate::types::_performance_factor_reference_request::PerformanceFactorReferenceRequestBuilder;

pub use crate::types::_fleet_iam_instance_profile_specification_request::FleetIamInstanceProfileSpecificationRequestBuilder;

pub use crate::types::_fleet_instance_metadata_options_request::FleetInstanceMetadataOptionsRequestBuilder;

pub use crate::types::_placement_response::PlacementResponseBuilder;

pub use crate::types::_instance_ipv6_address_request::InstanceIpv6AddressRequestBuilder;

pub use crate::types::_secondary_interface_private_ip_address_specification_request::SecondaryInterfacePrivateIpAddressSpecificationRequestBuilder;

pub use crate::types::_instance_type_item::InstanceTypeItemBuilder;

pub use crate::types::_ipv4_prefix_specification_response::Ipv4PrefixSpecificationResponseBuilder;

pub use crate::types::_ipv6_prefix_specification_response::Ipv6PrefixSpecificationResponseBuilder;

pub use crate::types::_launch_template_ena_srd_udp_specification::LaunchTemplateEnaSrdUdpSpecificationBuilder;

pub use crate::types::_secondary_interface_private_ip_address_specification::SecondaryInterfacePrivateIpAddressSpecificationBuilder;

pub use crate::types::_instance_network_interface_association::InstanceNetworkInterfaceAssociationBuilder;

pub use crate::types::_instance_network_interface_attachment::InstanceNetworkInterfaceAttachmentBuilder;

pub use crate::types::_connection_tracking_specification_response::ConnectionTrackingSpecificationResponseBuilder;

pub use crate::types::_instance_secondary_interface_attachment::InstanceSecondaryInterfaceAttachmentBuilder;

pub use crate::types::_fleet_block_device_mapping_request::FleetBlockDeviceMappingRequestBuilder;

pub use crate::types::_block_device_mapping_response::BlockDeviceMappingResponseBuilder;

pub use crate::types::_performance_factor_reference::PerformanceFactorReferenceBuilder;

pub use crate::types::_instance_attachment_ena_srd_specification::InstanceAttachmentEnaSrdSpecificationBuilder;

pub use crate::types::_instance_private_ip_address::InstancePrivateIpAddressBuilder;

pub use crate::types::_instance_ipv4_prefix::InstanceIpv4PrefixBuilder;

pub use crate::types::_instance_ipv6_prefix::InstanceIpv6PrefixBuilder;

pub use crate::types::_instance_secondary_interface_private_ip_address::InstanceSecondaryInterfacePrivateIpAddressBuilder;

pub use crate::types::_fleet_ebs_block_device_request::FleetEbsBlockDeviceRequestBuilder;

pub use crate::types::_ebs_block_device_response::EbsBlockDeviceResponseBuilder;

pub use crate::types::_instance_attachment_ena_srd_udp_specification::InstanceAttachmentEnaSrdUdpSpecificationBuilder;
