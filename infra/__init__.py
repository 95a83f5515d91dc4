"""Deploy tooling (`python -m infra.deploy`) beside the CloudFormation templates; never deployed."""
