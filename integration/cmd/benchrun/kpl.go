package main

// The KPL de-aggregation used to count the user records read back from kinesalite; the same code
// as in integration/cmd/fastsink (two main packages cannot share it).

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// userID is the prefix of data up to and including its second '|', or all of data.
func userID(data []byte) []byte {
	if i := bytes.IndexByte(data, '|'); i >= 0 {
		if j := bytes.IndexByte(data[i+1:], '|'); j >= 0 {
			return data[:i+1+j+1]
		}
	}
	return data
}

var kplMagic = []byte{0xF3, 0x89, 0x9A, 0xC2}

var errKPL = errors.New("malformed KPL aggregated record")

// deaggregate returns the data of every user record of a KPL aggregated record (magic, protobuf
// AggregatedRecord, 16-byte MD5; the digest is not checked). The slices point into data.
func deaggregate(data []byte) ([][]byte, error) {
	if len(data) < len(kplMagic)+16 {
		return nil, errKPL
	}
	pb := data[len(kplMagic) : len(data)-16]
	var out [][]byte
	for len(pb) > 0 {
		key, val, rest, err := field(pb)
		if err != nil {
			return nil, err
		}
		pb = rest
		if key != 3<<3|2 { // records
			continue
		}
		for len(val) > 0 {
			k, v, r, err := field(val)
			if err != nil {
				return nil, err
			}
			val = r
			if k == 3<<3|2 { // data
				out = append(out, v)
			}
		}
	}
	return out, nil
}

// field reads one protobuf field: its key, its value (the bytes of a length-delimited field, nil
// for the others) and what follows.
func field(p []byte) (key uint64, val, rest []byte, err error) {
	key, n := binary.Uvarint(p)
	if n <= 0 {
		return 0, nil, nil, errKPL
	}
	p = p[n:]
	switch key & 7 {
	case 0:
		_, n = binary.Uvarint(p)
		if n <= 0 {
			return 0, nil, nil, errKPL
		}
		return key, nil, p[n:], nil
	case 1:
		if len(p) < 8 {
			return 0, nil, nil, errKPL
		}
		return key, nil, p[8:], nil
	case 2:
		l, n := binary.Uvarint(p)
		if n <= 0 || l > uint64(len(p)-n) {
			return 0, nil, nil, errKPL
		}
		return key, p[n : n+int(l)], p[n+int(l):], nil
	case 5:
		if len(p) < 4 {
			return 0, nil, nil, errKPL
		}
		return key, nil, p[4:], nil
	}
	return 0, nil, nil, errKPL
}
