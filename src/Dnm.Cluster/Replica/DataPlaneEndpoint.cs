using System.Net;
using System.Net.Sockets;
using Dnm.Cluster.Transport;

namespace Dnm.Cluster.Replica;

/// <summary>
/// Where the coordinator's data-plane listener binds and what it advertises over Akka. <paramref name="Port"/> 0
/// takes an ephemeral port per world (the default); a fixed port (DNM_DATA_PLANE_PORT) suits firewalls and
/// Kubernetes, and is re-bound by each new world.
/// </summary>
public sealed record DataPlaneSettings(IPAddress BindAddress, string AdvertisedHost, int Port)
{
    public static DataPlaneSettings Loopback { get; } = new(IPAddress.Loopback, "127.0.0.1", 0);

    public DataPlaneOptions Options { get; init; } = DataPlaneOptions.Default;

    /// <summary>Resolves "host:port" (a DNS name or an address) to an endpoint; IPv4 first.</summary>
    public static async Task<IPEndPoint> ResolveAsync(string endpoint, CancellationToken cancel)
    {
        var colon = endpoint.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(endpoint.AsSpan(colon + 1), out var port) || port is < 1 or > 65535)
            throw new FormatException($"data-plane endpoint '{endpoint}' is not host:port");
        var host = endpoint[..colon].Trim('[', ']');
        if (IPAddress.TryParse(host, out var address)) return new IPEndPoint(address, port);
        var addresses = await Dns.GetHostAddressesAsync(host, cancel).ConfigureAwait(false);
        var chosen = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.FirstOrDefault()
                     ?? throw new SocketException((int)SocketError.HostNotFound);
        return new IPEndPoint(chosen, port);
    }
}
