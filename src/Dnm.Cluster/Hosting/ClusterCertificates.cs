using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Dnm.Cluster.Transport;
using Dnm.Core.Config;
using Dnm.Core.IO;

namespace Dnm.Cluster.Hosting;

/// <summary>
/// A cluster's certificates as PEM files, laid out as a Kubernetes TLS Secret (tls.crt, tls.key, ca.crt):
/// <see cref="Load(NodeOptions)"/> reads a node's, <see cref="Create"/> makes a CA and a node certificate signed by it
/// (`dnm cert create`).
/// </summary>
public static class ClusterCertificates
{
    public const string CertificateFile = "tls.crt";
    public const string KeyFile = "tls.key";
    public const string AuthorityFile = "ca.crt";

    /// <summary>Where the Kubernetes manifests mount the dnm-tls Secret.</summary>
    public const string MountDirectory = "/etc/dnm/tls";

    private const string Fix = "make a CA and a node certificate with `dnm cert create --out DIR` and pass --tls-cert DIR/tls.crt --tls-key DIR/tls.key " +
                               "--tls-ca DIR/ca.crt (on Kubernetes, mount the dnm-tls Secret at " + MountDirectory + ")";

    /// <summary>The node's TLS identity, or null when its options name no TLS files (plain TCP).</summary>
    public static ClusterTls? Load(NodeOptions options) =>
        options.UsesTls ? Load(options.TlsCert!, options.TlsKey!, options.TlsCa!) : null;

    /// <summary>
    /// Reads a PEM certificate, its private key (PKCS#8, or PKCS#1 / SEC1) and the cluster's CA certificate. A file that is
    /// missing, unreadable or not PEM, a key that is not the certificate's, and a certificate the CA did not sign each fail with a
    /// <see cref="ConfigException"/> naming the file and the fix.
    /// </summary>
    public static ClusterTls Load(string certificateFile, string keyFile, string authorityFile)
    {
        var certificateText = Read(certificateFile, NodeEnvironment.TlsCert);
        var keyText = Read(keyFile, NodeEnvironment.TlsKey);
        var authorityText = Read(authorityFile, NodeEnvironment.TlsCa);
        // Parsed alone first, so that a bad certificate file is named as such rather than as a key that does not match it.
        ParseCertificate(certificateText, certificateFile, NodeEnvironment.TlsCert).Dispose();
        var authority = ParseCertificate(authorityText, authorityFile, NodeEnvironment.TlsCa);
        X509Certificate2 certificate;
        try
        {
            certificate = X509Certificate2.CreateFromPem(certificateText, keyText);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            authority.Dispose();
            throw new ConfigException(IsPrivateKey(keyText)
                ? $"{Name(NodeEnvironment.TlsKey)} {keyFile} is not the private key of {Name(NodeEnvironment.TlsCert)} {certificateFile}: pass the key that was made with that certificate, or {Fix}"
                : $"{Name(NodeEnvironment.TlsKey)} {keyFile} holds no PEM private key (-----BEGIN PRIVATE KEY-----); {Fix}");
        }
        var tls = new ClusterTls(certificate, authority);
        if (tls.Check(certificate) is { } problem)
        {
            tls.Dispose();
            throw new ConfigException($"{Name(NodeEnvironment.TlsCert)} {certificateFile} is not valid under {Name(NodeEnvironment.TlsCa)} {authorityFile}: {problem}; " +
                                      $"use the ca.crt made with it, or {Fix}");
        }
        return tls;
    }

    /// <summary>
    /// Writes ca.crt, tls.crt and tls.key (owner-only) to <paramref name="directory"/>, each atomically: a new CA (ECDSA P-256,
    /// self-signed) and one node certificate signed by it, for both TLS server and client use, with subject alternative names for
    /// <paramref name="names"/> (DNS names or IP addresses) and localhost / 127.0.0.1. The CA's key is not kept: to add a node,
    /// make a new set and roll it out to every node.
    /// </summary>
    public static void Create(string directory, IReadOnlyList<string> names, int days, DateTimeOffset now)
    {
        if (days < 1) throw new ConfigException($"--days must be at least 1, got {days}");
        var notBefore = now.AddMinutes(-5); // clocks of the nodes differ a little
        var notAfter = now.AddDays(days);
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        // A random suffix tells two clusters' CAs apart in every message that names one.
        var caRequest = new CertificateRequest($"CN=dnm cluster CA {Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        using var ca = caRequest.CreateSelfSigned(notBefore, notAfter);

        using var nodeKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=dnm node", nodeKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyAgreement, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1", "TLS server"), new Oid("1.3.6.1.5.5.7.3.2", "TLS client")], false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in names.Append("localhost").Append("127.0.0.1").Distinct(StringComparer.OrdinalIgnoreCase))
        {
            if (IPAddress.TryParse(name, out var ip)) san.AddIpAddress(ip);
            else if (Uri.CheckHostName(name) == UriHostNameType.Dns) san.AddDnsName(name);
            else throw new ConfigException($"--nodes: '{name}' is neither a DNS name nor an IP address");
        }
        request.CertificateExtensions.Add(san.Build());
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F; // a positive serial number
        using var node = request.Create(ca, notBefore, notAfter, serial);

        Directory.CreateDirectory(directory);
        Write(Path.Combine(directory, AuthorityFile), ca.ExportCertificatePem(), secret: false);
        Write(Path.Combine(directory, KeyFile), nodeKey.ExportPkcs8PrivateKeyPem(), secret: true);
        Write(Path.Combine(directory, CertificateFile), node.ExportCertificatePem(), secret: false);
    }

    private static void Write(string path, string pem, bool secret)
    {
        using var file = new AtomicFileWriter(path);
        if (secret && !OperatingSystem.IsWindows())
            File.SetUnixFileMode(file.Stream.SafeFileHandle, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        file.Stream.Write(Encoding.ASCII.GetBytes(pem + "\n"));
        file.Commit();
    }

    private static string Read(string path, string variable)
    {
        if (!File.Exists(path))
            throw new ConfigException($"{Name(variable)} {path}: no such file; {Fix}");
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{Name(variable)} {path} cannot be read ({e.Message}); give this process read access, or {Fix}");
        }
    }

    private static X509Certificate2 ParseCertificate(string text, string path, string variable)
    {
        try
        {
            return X509Certificate2.CreateFromPem(text);
        }
        catch (CryptographicException)
        {
            throw new ConfigException($"{Name(variable)} {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); {Fix}");
        }
    }

    private static bool IsPrivateKey(string text)
    {
        foreach (var create in new Func<AsymmetricAlgorithm>[] { ECDsa.Create, RSA.Create })
        {
            using var key = create();
            try
            {
                key.ImportFromPem(text);
                return true;
            }
            catch (Exception e) when (e is CryptographicException or ArgumentException)
            {
            }
        }
        return false;
    }

    /// <summary>"--tls-cert (DNM_TLS_CERT)": the flag and the variable, whichever the user set.</summary>
    private static string Name(string variable) =>
        NodeEnvironment.Options.FirstOrDefault(o => o.Variable == variable) is { } o ? $"{o.Flag} ({o.Variable})" : variable;
}
