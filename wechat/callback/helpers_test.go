package callback_test

import "errors"

// errorsIsOneOf says whether err matches any of targets.
func errorsIsOneOf(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
