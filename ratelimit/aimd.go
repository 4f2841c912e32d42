package ratelimit

import (
	"math"
	"sync"
)

// AIMD adjusts a concurrency limit (in-flight PutRecords calls) the way TCP
// adjusts its window: additive increase on success, multiplicative decrease on
// throttle, always within [min, max]. It starts at max, so it changes nothing
// until Kinesis throttles: the Limiter is the first line of defence and AIMD
// the fallback when other producers share the stream.
//
// Each call moves the limit, so report one outcome per request, not per
// record: a request whose records were partly throttled is one OnThrottle.
// It is safe for concurrent use.
type AIMD struct {
	mu       sync.Mutex
	min, max int
	increase int
	decrease float64
	limit    int
}

// NewAIMD returns an AIMD starting at maxLimit. increase is added per success;
// the limit is multiplied by decrease per throttle. Arguments out of range are
// corrected rather than refused (config validation is the place to reject
// them): a minLimit below 1 becomes 1, a maxLimit below minLimit becomes
// minLimit, an increase below 1 becomes 1, and a decrease outside (0, 1)
// becomes 0.5.
func NewAIMD(minLimit, maxLimit int, increase int, decrease float64) *AIMD {
	minLimit = max(minLimit, 1)
	maxLimit = max(maxLimit, minLimit)
	increase = max(increase, 1)
	if !(decrease > 0 && decrease < 1) {
		decrease = 0.5
	}
	return &AIMD{min: minLimit, max: maxLimit, increase: increase, decrease: decrease, limit: maxLimit}
}

// Limit returns the current concurrency limit.
func (a *AIMD) Limit() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.limit
}

// OnSuccess raises the limit by increase, up to max.
func (a *AIMD) OnSuccess() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.limit <= a.max-a.increase {
		a.limit += a.increase
	} else {
		a.limit = a.max
	}
}

// OnThrottle multiplies the limit by decrease, rounding down, and lowers it by
// at least one (so a factor like 0.9 still bites on small limits), down to min.
func (a *AIMD) OnThrottle() {
	a.mu.Lock()
	defer a.mu.Unlock()
	next := int(math.Floor(float64(a.limit) * a.decrease))
	if next >= a.limit {
		next = a.limit - 1
	}
	a.limit = max(next, a.min)
}
