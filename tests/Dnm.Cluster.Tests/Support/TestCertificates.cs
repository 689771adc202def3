using Dnm.Cluster.Hosting;
using Dnm.Cluster.Transport;

namespace Dnm.Cluster.Tests.Support;

/// <summary>Cluster certificate sets as `dnm cert create` writes them, each with its own CA, in a temporary folder.</summary>
internal sealed class TestCertificates : IDisposable
{
    private readonly TempDir dir = new();

    /// <summary>A folder for a set the spec writes itself (not created).</summary>
    public string Folder(string name) => dir.Sub(name);

    /// <summary>Writes a new set (a new CA and a node certificate) under <paramref name="name"/>; returns its folder.</summary>
    public string Create(string name, int days = 1)
    {
        var folder = Folder(name);
        ClusterCertificates.Create(folder, [], days, DateTimeOffset.UtcNow);
        return folder;
    }

    /// <summary>The set in <paramref name="folder"/> loaded as a node loads it.</summary>
    public static ClusterTls Load(string folder) => ClusterCertificates.Load(
        Path.Combine(folder, ClusterCertificates.CertificateFile), Path.Combine(folder, ClusterCertificates.KeyFile), Path.Combine(folder, ClusterCertificates.AuthorityFile));

    public void Dispose() => dir.Dispose();
}
