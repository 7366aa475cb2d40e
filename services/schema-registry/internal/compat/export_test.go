package compat

// CheckSteps exposes checkSteps to the external fuzz test.
var CheckSteps = checkSteps
