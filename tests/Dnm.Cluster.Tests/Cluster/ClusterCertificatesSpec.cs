using System.Security.Cryptography.X509Certificates;
using Dnm.Cluster.Hosting;
using Dnm.Cluster.Tests.Support;
using Dnm.Core.Config;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>`dnm cert create`'s files, and what a node says about each kind of bad TLS file (exit 2 in the CLI: a ConfigException).</summary>
public sealed class ClusterCertificatesSpec : IDisposable
{
    private readonly TestCertificates _certificates = new();
    private readonly string _cluster;
    private readonly string _other;

    public ClusterCertificatesSpec()
    {
        _cluster = _certificates.Create("cluster");
        _other = _certificates.Create("other");
    }

    private static string Cert(string folder) => Path.Combine(folder, ClusterCertificates.CertificateFile);
    private static string Key(string folder) => Path.Combine(folder, ClusterCertificates.KeyFile);
    private static string Ca(string folder) => Path.Combine(folder, ClusterCertificates.AuthorityFile);

    [Fact]
    public void Should_make_a_CA_and_a_node_certificate_for_the_given_names_that_load_as_a_node_loads_them()
    {
        var folder = _certificates.Folder("named");
        ClusterCertificates.Create(folder, ["dnm-coordinator-0.dnm-gossip", "10.0.0.7"], 30, DateTimeOffset.UtcNow);
        using var tls = ClusterCertificates.Load(Cert(folder), Key(folder), Ca(folder));
        Assert.Null(tls.Check(tls.Certificate));
        var names = tls.Certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.Equal(["dnm-coordinator-0.dnm-gossip", "localhost"], names.EnumerateDnsNames());
        Assert.Equal(["10.0.0.7", "127.0.0.1"], names.EnumerateIPAddresses().Select(a => a.ToString()));
        Assert.InRange((tls.Certificate.NotAfter - DateTime.Now).TotalDays, 29, 30.01);
        Assert.True(tls.Authority.Extensions.OfType<X509BasicConstraintsExtension>().Single().CertificateAuthority);
        // The private key is for this user only; no temporary file is left beside the three.
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Key(folder)));
        Assert.Equal(["ca.crt", "tls.crt", "tls.key"], Directory.GetFiles(folder).Select(Path.GetFileName).Order());
        // Another cluster's node is not accepted, and a certificate that is not a node's (the CA's own) is refused too.
        using var other = ClusterCertificates.Load(Cert(_other), Key(_other), Ca(_other));
        Assert.Contains("does not chain to this cluster's CA", tls.Check(other.Certificate));
        Assert.Equal("it presented no certificate", tls.Check(null));
    }

    [Fact]
    public void Should_name_the_file_and_the_fix_for_each_bad_file()
    {
        var missing = Path.Combine(_cluster, "nope.crt");
        Assert.Equal($"--tls-cert (DNM_TLS_CERT) {missing}: no such file; make a CA and a node certificate with `dnm cert create --out DIR` and pass " +
                     "--tls-cert DIR/tls.crt --tls-key DIR/tls.key --tls-ca DIR/ca.crt (on Kubernetes, mount the dnm-tls Secret at /etc/dnm/tls)",
            Problem(missing, Key(_cluster), Ca(_cluster)));
        Assert.StartsWith($"--tls-ca (DNM_TLS_CA) {missing}: no such file", Problem(Cert(_cluster), Key(_cluster), missing));
        Assert.StartsWith($"--tls-cert (DNM_TLS_CERT) {Key(_cluster)} holds no PEM certificate", Problem(Key(_cluster), Key(_cluster), Ca(_cluster)));
        Assert.StartsWith($"--tls-key (DNM_TLS_KEY) {Cert(_cluster)} holds no PEM private key", Problem(Cert(_cluster), Cert(_cluster), Ca(_cluster)));
        Assert.StartsWith($"--tls-key (DNM_TLS_KEY) {Key(_other)} is not the private key of --tls-cert (DNM_TLS_CERT) {Cert(_cluster)}",
            Problem(Cert(_cluster), Key(_other), Ca(_cluster)));
        Assert.StartsWith($"--tls-cert (DNM_TLS_CERT) {Cert(_cluster)} is not valid under --tls-ca (DNM_TLS_CA) {Ca(_other)}",
            Problem(Cert(_cluster), Key(_cluster), Ca(_other)));
    }

    [Fact]
    public void Should_refuse_an_expired_certificate()
    {
        var folder = _certificates.Folder("expired");
        ClusterCertificates.Create(folder, [], 1, DateTimeOffset.UtcNow.AddDays(-3));
        Assert.StartsWith($"--tls-cert (DNM_TLS_CERT) {Cert(folder)} is not valid under", Problem(Cert(folder), Key(folder), Ca(folder)));
    }

    [Fact]
    public void The_three_files_come_from_flags_or_the_environment_and_only_together()
    {
        var env = new Dictionary<string, string> { ["DNM_TLS_CERT"] = "/etc/dnm/tls/tls.crt", ["DNM_TLS_KEY"] = "/etc/dnm/tls/tls.key", ["DNM_TLS_CA"] = "/etc/dnm/tls/ca.crt" };
        var o = NodeEnvironment.Apply(new NodeOptions(), k => env.GetValueOrDefault(k));
        Assert.Equal(("/etc/dnm/tls/tls.crt", "/etc/dnm/tls/tls.key", "/etc/dnm/tls/ca.crt"), (o.TlsCert, o.TlsKey, o.TlsCa));
        Assert.True(o.UsesTls);
        Assert.Empty(o.Problems());
        Assert.False(new NodeOptions().UsesTls);
        Assert.Null(ClusterCertificates.Load(new NodeOptions()));
        var problem = Assert.Single(new NodeOptions { TlsCert = "a.crt" }.Problems());
        Assert.Equal("--tls-cert, --tls-key and --tls-ca (DNM_TLS_CERT, DNM_TLS_KEY, DNM_TLS_CA) go together: --tls-key and --tls-ca missing " +
                     "(in the dnm-tls Secret: tls.crt, tls.key and ca.crt)", problem);
    }

    private static string Problem(string cert, string key, string ca) =>
        Assert.Throws<ConfigException>(() => ClusterCertificates.Load(cert, key, ca).Dispose()).Message;

    public void Dispose() => _certificates.Dispose();
}
