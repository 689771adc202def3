using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace Dnm.Cluster.Transport;

/// <summary>
/// A node's TLS identity and the one authority it trusts: its certificate (with the private key) and the cluster's
/// CA. A peer is accepted only when the certificate it presents chains to <see cref="Authority"/>, and to nothing
/// else: the system trust store plays no part, so a certificate from a public CA, or from another cluster's CA, is
/// refused like no certificate at all. Host names are not checked: every node of a cluster may share one
/// certificate, and holding a key the cluster's CA signed is what admits a node. Akka.Remote and the data plane
/// both authenticate through <see cref="Check"/>.
/// </summary>
public sealed class ClusterTls : IDisposable
{
    public ClusterTls(X509Certificate2 certificate, X509Certificate2 authority)
    {
        if (!certificate.HasPrivateKey)
            throw new ArgumentException("The node certificate needs its private key.", nameof(certificate));
        Certificate = certificate;
        Authority = authority;
    }

    /// <summary>
    /// Reads the PEM files as they are, without the checks and messages of a node's start-up (Hosting's ClusterCertificates):
    /// for tools and benchmarks.
    /// </summary>
    public static ClusterTls FromPemFiles(string certificateFile, string keyFile, string authorityFile) =>
        new(X509Certificate2.CreateFromPemFile(certificateFile, keyFile), X509Certificate2.CreateFromPem(File.ReadAllText(authorityFile)));

    /// <summary>This node's certificate, with its private key: what it presents to every peer.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>The cluster's CA: the only root a peer's certificate may chain to.</summary>
    public X509Certificate2 Authority { get; }

    /// <summary>Null when <paramref name="peer"/> chains to <see cref="Authority"/> and is valid now; otherwise why not, for a log line.</summary>
    public string? Check(X509Certificate? peer)
    {
        if (peer is null)
            return "it presented no certificate";
        using var copy = peer is X509Certificate2 ? null : new X509Certificate2(peer);
        var subject = copy ?? (X509Certificate2)peer;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(Authority);
        // A private CA publishes no revocation lists; its certificates are short-lived instead (dnm cert create --days).
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationFlags = X509VerificationFlags.NoFlag;
        if (chain.Build(subject))
            return null;
        var reasons = chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct();
        return $"its certificate '{subject.Subject}' (issuer '{subject.Issuer}') does not chain to this cluster's CA '{Authority.Subject}': " +
               string.Join("; ", reasons);
    }

    /// <summary>TLS for the accepting side of a data-plane connection: this certificate, and a client certificate required and checked.</summary>
    internal SslServerAuthenticationOptions ServerOptions(Action<string> refused) => new()
    {
        ServerCertificate = Certificate,
        ClientCertificateRequired = true,
        EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        RemoteCertificateValidationCallback = (_, certificate, _, _) => Accept(certificate, refused),
    };

    /// <summary>TLS for the connecting side: this certificate as the client's, and the server's checked the same way.</summary>
    internal SslClientAuthenticationOptions ClientOptions(string targetHost, Action<string> refused) => new()
    {
        TargetHost = targetHost,
        ClientCertificates = [Certificate],
        LocalCertificateSelectionCallback = (_, _, _, _, _) => Certificate,
        EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        RemoteCertificateValidationCallback = (_, certificate, _, _) => Accept(certificate, refused),
    };

    // The policy errors SslStream computed against the system store are ignored on purpose: Check decides alone.
    private bool Accept(X509Certificate? certificate, Action<string> refused)
    {
        if (Check(certificate) is not { } problem)
            return true;
        refused(problem);
        return false;
    }

    public void Dispose()
    {
        Certificate.Dispose();
        Authority.Dispose();
    }
}
