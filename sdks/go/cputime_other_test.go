//go:build !unix

package nexus

import "time"

func processCPU() time.Duration { return 0 }
