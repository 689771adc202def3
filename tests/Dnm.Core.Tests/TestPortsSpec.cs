using System.Net;
using System.Net.Sockets;
using Dnm.Tests.Shared;

namespace Dnm.Core.Tests;

/// <summary>The test suites' port allocator (tests/Shared/TestPorts.cs), which every project's process shares.</summary>
public class TestPortsSpec
{
    [Fact]
    public void Ports_are_distinct_bindable_and_below_the_kernels_ephemeral_range()
    {
        var ports = Enumerable.Range(0, 20).Select(_ => TestPorts.Next()).ToArray();
        Assert.Equal(ports.Length, ports.Distinct().Count());
        Assert.All(ports, p => Assert.InRange(p, 1024, TestPorts.EphemeralRangeStart() - 1));
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, ports[^1]));
    }
}
