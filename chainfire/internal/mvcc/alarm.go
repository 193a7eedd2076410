package mvcc

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Alarm is one active cluster alarm: which member raised it and its etcd
// AlarmType number (1 NOSPACE, 2 CORRUPT).
type Alarm struct {
	Member uint64
	Type   int32
}

func alarmKey(a Alarm) []byte {
	k := putBE64([]byte{tagAlarm}, a.Member)
	return binary.BigEndian.AppendUint32(k, uint32(a.Type))
}

// SetAlarm records (on) or clears an alarm.
func (s *Store) SetAlarm(w pebble.Writer, a Alarm, on bool) error {
	if on {
		return w.Set(s.full(alarmKey(a)), nil, nil)
	}
	return w.Delete(s.full(alarmKey(a)), nil)
}

// Alarms returns the active alarms in member, type order.
func (s *Store) Alarms(r pebble.Reader) ([]Alarm, error) {
	p := s.full([]byte{tagAlarm})
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Alarm
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[len(p):]
		if len(k) != 12 {
			return nil, fmt.Errorf("mvcc: malformed alarm record %x", it.Key())
		}
		out = append(out, Alarm{Member: uint64FromBE(k), Type: int32(binary.BigEndian.Uint32(k[8:]))})
	}
	return out, it.Error()
}
