package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Certs are the PEM files GenerateCerts writes.
type Certs struct {
	// CA signed the broker's and the client's certificates; the broker trusts it for client
	// certificates.
	CA string
	// OtherCA signed nothing the broker uses: a client trusting only it must reject the broker.
	OtherCA string
	// ClientCert and ClientKey are a client certificate (CN=ferry-client, client auth) signed by
	// CA, and its PKCS#8 key.
	ClientCert, ClientKey string
	// OtherClientCert and OtherClientKey are a client certificate signed by OtherCA, which the
	// broker must reject.
	OtherClientCert, OtherClientKey string
	// BrokerKeystore holds the broker's PKCS#8 key, then its certificate (SANs IP:127.0.0.1 and
	// DNS:localhost) and the CA: a PEM keystore for Kafka (ssl.keystore.type=PEM, KIP-651).
	BrokerKeystore string
}

// GenerateCerts writes a CA, a broker certificate for 127.0.0.1 and localhost, client
// certificates and an unrelated CA into dir (see Certs). Keys are ECDSA P-256 in PKCS#8, without
// a password, as Kafka's PEM keystore wants them when ssl.key.password is unset. Everything is
// valid from an hour ago for 30 days.
func GenerateCerts(dir string) (Certs, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Certs{}, err
	}
	c := Certs{
		CA:              filepath.Join(dir, "ca.pem"),
		OtherCA:         filepath.Join(dir, "other-ca.pem"),
		ClientCert:      filepath.Join(dir, "client.pem"),
		ClientKey:       filepath.Join(dir, "client-key.pem"),
		OtherClientCert: filepath.Join(dir, "other-client.pem"),
		OtherClientKey:  filepath.Join(dir, "other-client-key.pem"),
		BrokerKeystore:  filepath.Join(dir, "broker.pem"),
	}
	ca, err := newCert("ferry test CA", nil, nil, certCA)
	if err != nil {
		return Certs{}, err
	}
	other, err := newCert("ferry unrelated CA", nil, nil, certCA)
	if err != nil {
		return Certs{}, err
	}
	broker, err := newCert("localhost", ca.cert, ca.key, certServer)
	if err != nil {
		return Certs{}, err
	}
	client, err := newCert("ferry-client", ca.cert, ca.key, certClient)
	if err != nil {
		return Certs{}, err
	}
	otherClient, err := newCert("ferry-client", other.cert, other.key, certClient)
	if err != nil {
		return Certs{}, err
	}
	files := []struct {
		path   string
		blocks []*pem.Block
	}{
		{c.CA, []*pem.Block{ca.certPEM()}},
		{c.OtherCA, []*pem.Block{other.certPEM()}},
		{c.ClientCert, []*pem.Block{client.certPEM()}},
		{c.ClientKey, []*pem.Block{client.keyPEM}},
		{c.OtherClientCert, []*pem.Block{otherClient.certPEM()}},
		{c.OtherClientKey, []*pem.Block{otherClient.keyPEM}},
		{c.BrokerKeystore, []*pem.Block{broker.keyPEM, broker.certPEM(), ca.certPEM()}},
	}
	for _, f := range files {
		var b []byte
		for _, blk := range f.blocks {
			b = append(b, pem.EncodeToMemory(blk)...)
		}
		if err := os.WriteFile(f.path, b, 0o600); err != nil {
			return Certs{}, err
		}
	}
	return c, nil
}

type certKind int

const (
	certCA certKind = iota
	certServer
	certClient
)

type issued struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	keyPEM *pem.Block
}

func (i issued) certPEM() *pem.Block { return &pem.Block{Type: "CERTIFICATE", Bytes: i.cert.Raw} }

// newCert makes a certificate of kind for cn, signed by parent (self-signed when parent is nil).
func newCert(cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, kind certKind) (issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return issued{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return issued{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"ferry tests"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	switch kind {
	case certCA:
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	case certServer:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	case certClient:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return issued{}, fmt.Errorf("certificate %s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return issued{}, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return issued{}, err
	}
	return issued{cert: cert, key: key, keyPEM: &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}}, nil
}
