module github.com/sluicehq/sluice/scripts/e2e

go 1.26.0

replace (
	github.com/sluicehq/sluice/pkg => ../../pkg
	github.com/sluicehq/sluice/pkg/testkit => ../../pkg/testkit
	github.com/sluicehq/sluice/scripts/loadgen => ../loadgen
)
