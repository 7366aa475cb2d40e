module github.com/sluicehq/sluice/scripts/devstack

go 1.26.0

replace (
	github.com/sluicehq/sluice/pkg => ../../pkg
	github.com/sluicehq/sluice/pkg/testkit => ../../pkg/testkit
)
