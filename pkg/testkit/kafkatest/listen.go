package kafkatest

import "net"

// loopback binds only to 127.0.0.1 on a random port, whatever kfake asks for.
func loopback(network, _ string) (net.Listener, error) {
	return net.Listen(network, "127.0.0.1:0")
}
