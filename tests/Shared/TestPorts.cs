using System.Net;
using System.Net.Sockets;

namespace Dnm.Tests.Shared;

/// <summary>Ports for the servers and child processes that tests start, never handed out twice on this machine at once.</summary>
internal static class TestPorts
{
    // A port found by binding port 0 comes from the kernel's ephemeral range, and the kernel offers it again as soon
    // as the probe socket closes: to a parallel test, or to another test project's process (`dotnet test` runs the
    // projects in parallel), that binds port 0 or connects out before the child this test handed the port to (a
    // `dnm train --metrics-port`, a cluster node) has bound it, seconds later. CI failed that way. So ports come from
    // a block just below the ephemeral range, which the kernel never hands out by itself: one block per test
    // assembly, so processes never share a port, and each port at most once per process, so tests never do.
    private const int BlockSize = 1500;
    private static readonly string[] Assemblies = ["Dnm.Core.Tests", "Dnm.Cluster.Tests", "Dnm.Node.Tests", "Dnm.Deploy.Tests"];
    private static readonly Lock Gate = new();
    private static int next;
    private static int end;

    /// <summary>A port free now (on every interface) that no other test on this machine was or will be given.</summary>
    public static int Next()
    {
        lock (Gate)
        {
            if (end == 0) (next, end) = Block();
            while (next < end)
            {
                var port = next++;
                if (IsFree(port)) return port;
            }
        }
        throw new InvalidOperationException($"every port of this test assembly's block up to {end} was handed out or in use");
    }

    private static (int Start, int End) Block()
    {
        var name = typeof(TestPorts).Assembly.GetName().Name;
        var index = Array.IndexOf(Assemblies, name);
        if (index < 0) throw new InvalidOperationException($"test assembly {name} has no port block: add it to TestPorts.Assemblies");
        var ephemeralStart = EphemeralRangeStart();
        var start = ephemeralStart - (Assemblies.Length - index) * BlockSize;
        if (start < 1024)
            throw new InvalidOperationException($"the ephemeral port range starts at {ephemeralStart}, too low to leave the tests their port blocks below it");
        return (start, start + BlockSize);
    }

    /// <summary>The first port of the kernel's ephemeral range (bind to port 0, outgoing connections).</summary>
    internal static int EphemeralRangeStart()
    {
        const string range = "/proc/sys/net/ipv4/ip_local_port_range";
        return File.Exists(range) ? int.Parse(File.ReadAllText(range).Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries)[0]) : 32768;
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(IPAddress.Any, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
