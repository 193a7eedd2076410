package pd

import "fmt"

var binaryUnits = []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"}

// humanBytes formats a byte count as docker/go-units' BytesSize does (and
// so TiKV PD's capacity strings): binary units, 4 significant digits,
// "1.819TiB", "96MiB", "0B".
func humanBytes(n uint64) string {
	size := float64(n)
	i := 0
	for size >= 1024 && i < len(binaryUnits)-1 {
		size /= 1024
		i++
	}
	return fmt.Sprintf("%.4g%s", size, binaryUnits[i])
}
