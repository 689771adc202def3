using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;

namespace Dnm.Cluster.Transport;

/// <summary>
/// The byte stream a data-plane connection reads and writes: the socket itself (<see cref="NetworkStream"/>), or,
/// with <see cref="DataPlaneOptions.Tls"/>, a mutually authenticated TLS session over it, opened before the
/// handshake. Either side refuses a peer whose certificate does not chain to the cluster's CA
/// (<see cref="ClusterTls.Check"/>), and one that presents none.
/// </summary>
internal static class DataPlaneStreams
{
    /// <summary>The accepting side; <paramref name="peer"/> names the client in errors.</summary>
    public static async Task<Stream> ServerAsync(Socket socket, DataPlaneOptions options, string peer, CancellationToken cancellationToken)
    {
        var network = new NetworkStream(socket, ownsSocket: false);
        if (options.Tls is not { } tls)
            return network;
        string? refused = null;
        var ssl = new SslStream(network, leaveInnerStreamOpen: false);
        try
        {
            await ssl.AuthenticateAsServerAsync(tls.ServerOptions(problem => refused = problem), cancellationToken).ConfigureAwait(false);
            return ssl;
        }
        catch (Exception e) when (e is AuthenticationException or IOException)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw Refused(peer, "client", refused, e);
        }
    }

    /// <summary>The connecting side; <paramref name="server"/> names the server in errors, <paramref name="targetHost"/> is its host.</summary>
    public static async Task<Stream> ClientAsync(Socket socket, DataPlaneOptions options, string server, string targetHost, CancellationToken cancellationToken)
    {
        var network = new NetworkStream(socket, ownsSocket: false);
        if (options.Tls is not { } tls)
            return network;
        string? refused = null;
        var ssl = new SslStream(network, leaveInnerStreamOpen: false);
        try
        {
            await ssl.AuthenticateAsClientAsync(tls.ClientOptions(targetHost, problem => refused = problem), cancellationToken).ConfigureAwait(false);
            return ssl;
        }
        catch (Exception e) when (e is AuthenticationException or IOException)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw Refused(server, "server", refused, e);
        }
    }

    private static DataPlaneException Refused(string peer, string role, string? refused, Exception e) => new(peer, "Certificate", refused is null
        ? $"TLS handshake with the data-plane {role} at {peer} failed: {e.Message} (every node needs --tls-cert, --tls-key and --tls-ca of the same cluster CA)"
        : $"Refused the data-plane {role} at {peer}: {refused}", e);
}
