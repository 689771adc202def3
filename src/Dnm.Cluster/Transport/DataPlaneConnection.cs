using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Dnm.Cluster.Transport;

/// <summary>
/// One TCP connection of the data plane, after a successful handshake; the connecting and the accepting
/// side get the same type. Frames are a <see cref="FrameHeader"/> followed by float payload bytes.
/// <para>
/// Shared memory: when both processes see the same /dev/shm (one host, one IPC namespace) the handshake
/// maps a segment per direction, and a payload above the inline size that fits one travels through it:
/// the sender copies it in and sends only the header over TCP, flagged; the receiver copies it out,
/// checks the CRC as always and frees the segment. A sender never waits for the segment: while the
/// previous payload has not been copied out, the frame goes over TCP (correct for any send/receive
/// sequence; the all-reduce's request/response never needs it). Callers see no difference.
/// </para>
/// <para>
/// Hot path: no allocation per frame. Payloads are sent straight from the caller's memory and received
/// straight into the caller's destination (pinned for the frame); header buffers are per connection and
/// the async state machines are pooled.
/// </para>
/// <para>
/// Security: with <see cref="DataPlaneOptions.Tls"/> every byte on the socket is inside a mutually authenticated
/// TLS session (<see cref="DataPlaneStreams"/>); payloads in shared memory stay on the host, behind the
/// segment files' owner-only permissions.
/// </para>
/// <para>
/// Concurrency: one SendAsync and one ReceiveAsync may run at the same time (full duplex), never two of
/// the same. Any error or cancellation mid-frame leaves the byte stream unusable, so it faults the
/// connection: the socket is closed and later calls throw. Recovery is the control plane's decision.
/// </para>
/// </summary>
public sealed class DataPlaneConnection : IDisposable
{
    // Small payloads travel through per-connection buffers, header and payload in one send and one
    // receive (one syscall each): that is the latency-bound soft-count round trip. Larger ones are sent
    // from the caller's memory and received straight into the destination.
    private const int InlinePayloadBytes = 64 * 1024;

    private readonly Socket _socket;
    // The socket itself (NetworkStream) or a TLS session over it: every read and write goes through it.
    private readonly Stream _stream;
    private readonly byte[] _sendBuffer = new byte[FrameHeader.Size + InlinePayloadBytes];
    private readonly byte[] _receiveBuffer = new byte[FrameHeader.Size + InlinePayloadBytes];
    private readonly PinnedByteWindow _sendWindow = new();
    private readonly PinnedByteWindow _receiveWindow = new();
    private readonly SharedMemoryChannel? _sharedMemory;
    private int _sending;
    private int _receiving;
    private long _bytesSent;
    private long _bytesReceived;
    private long _sharedMemoryBytesSent;
    private long _sharedMemoryBytesReceived;
    private Exception? _fault;

    internal DataPlaneConnection(Socket socket, Stream stream, Guid runId, int localRank, HandshakeResult handshake)
    {
        _socket = socket;
        _stream = stream;
        _sharedMemory = handshake.SharedMemory;
        RunId = runId;
        LocalRank = localRank;
        RemoteRank = handshake.RemoteRank;
        SharedMemoryFallback = handshake.Fallback;
        RemoteEndPoint = socket.RemoteEndPoint;
        Peer = $"rank {RemoteRank} at {RemoteEndPoint}";
    }

    public Guid RunId { get; }

    public int LocalRank { get; }

    /// <summary>The rank the peer announced in the handshake; every frame it sends must carry it.</summary>
    public int RemoteRank { get; }

    public EndPoint? RemoteEndPoint { get; }

    /// <summary>"rank R at host:port", used in every error message.</summary>
    public string Peer { get; }

    /// <summary>
    /// Header and payload bytes sent since the handshake (for dnm_allreduce_bytes_total), whichever path
    /// the payloads took.
    /// </summary>
    public long BytesSent => Interlocked.Read(ref _bytesSent);

    /// <summary>Header and payload bytes received since the handshake, whichever path the payloads took.</summary>
    public long BytesReceived => Interlocked.Read(ref _bytesReceived);

    /// <summary>True when the handshake set up the shared-memory path (both peers on one host).</summary>
    public bool UsesSharedMemory => _sharedMemory is not null;

    /// <summary>Payload bytes larger than this may travel through shared memory; 0 without a channel.</summary>
    public int SharedMemoryCapacity => _sharedMemory?.Capacity ?? 0;

    /// <summary>Why the connection has no shared-memory path (disabled, another host, ...); null when it has one.</summary>
    public string? SharedMemoryFallback { get; }

    /// <summary>The part of <see cref="BytesSent"/> whose payloads went through shared memory (payload bytes only).</summary>
    public long SharedMemoryBytesSent => Interlocked.Read(ref _sharedMemoryBytesSent);

    /// <summary>The part of <see cref="BytesReceived"/> whose payloads came through shared memory (payload bytes only).</summary>
    public long SharedMemoryBytesReceived => Interlocked.Read(ref _sharedMemoryBytesReceived);

    /// <summary>True when every byte on the socket is inside a mutually authenticated TLS session.</summary>
    public bool IsEncrypted => _stream is System.Net.Security.SslStream;

    /// <summary>The channel itself, for tests that corrupt a payload in flight.</summary>
    internal SharedMemoryChannel? SharedMemory => _sharedMemory;

    /// <summary>Connects to a <see cref="DataPlaneListener"/> and performs the handshake.</summary>
    /// <exception cref="DataPlaneException">The server rejected us (run id, version) or is not a data-plane peer.</exception>
    public static async Task<DataPlaneConnection> ConnectAsync(
        EndPoint server, Guid runId, int localRank, DataPlaneOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= DataPlaneOptions.Default;
        var socket = server is IPEndPoint ip
            ? new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
            : new Socket(SocketType.Stream, ProtocolType.Tcp);
        Stream? stream = null;
        try
        {
            Configure(socket, options);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(options.HandshakeTimeout);
            await socket.ConnectAsync(server, timeout.Token).ConfigureAwait(false);
            var peer = $"data-plane server at {socket.RemoteEndPoint}";
            stream = await DataPlaneStreams.ClientAsync(socket, options, peer, TargetHost(server), timeout.Token).ConfigureAwait(false);
            try
            {
                var handshake = await DataPlaneHandshake.ClientAsync(stream, socket.RemoteEndPoint, runId, localRank, options, timeout.Token).ConfigureAwait(false);
                return new DataPlaneConnection(socket, stream, runId, localRank, handshake);
            }
            catch (IOException e) when (e is not DataPlaneException && options.Tls is not null)
            {
                // TLS 1.3 settles the client's certificate after the client's side of the TLS handshake is done:
                // a server that refuses it closes the session on the first read.
                throw new DataPlaneException(peer, "Certificate",
                    $"The {peer} closed the TLS session during the handshake ({e.Message}): it refused this node's certificate, or is not of this cluster's CA", e);
            }
        }
        catch
        {
            if (stream is not null) await stream.DisposeAsync().ConfigureAwait(false);
            socket.Dispose();
            throw;
        }
    }

    private static string TargetHost(EndPoint server) => server switch
    {
        DnsEndPoint dns => dns.Host,
        IPEndPoint ip => ip.Address.ToString(),
        _ => server.ToString() ?? "",
    };

    internal static void Configure(Socket socket, DataPlaneOptions options)
    {
        // Frames are already large or latency-critical; Nagle would only delay the small ones.
        socket.NoDelay = true;
        if (options.SocketBufferBytes > 0)
        {
            socket.SendBufferSize = options.SocketBufferBytes;
            socket.ReceiveBufferSize = options.SocketBufferBytes;
        }
    }

    /// <summary>Sends one frame whose payload is <paramref name="payload"/>, checksummed here.</summary>
    public ValueTask SendAsync(FrameKind kind, long step, ReadOnlyMemory<float> payload, CancellationToken cancellationToken = default)
        => SendAsync(kind, step, payload, Crc32C.Compute(MemoryMarshal.AsBytes(payload.Span)), cancellationToken);

    /// <summary>
    /// Sends one frame on the calling thread if that cannot block it: a payload through shared memory (the socket carries the header
    /// only) or a small inline one, both far below what the socket's buffer takes while the peer is busy. False, with nothing sent,
    /// when the payload would stream over TCP (no segment, too large for it, or the peer has not copied the previous one out): send it
    /// with <see cref="SendAsync(FrameKind, long, ReadOnlyMemory{float}, uint, CancellationToken)"/>, which does not wait for the peer to read.
    /// </summary>
    internal bool TrySendNow(FrameKind kind, long step, ReadOnlyMemory<float> payload, uint checksum)
    {
        var payloadBytes = CheckedPayloadBytes(kind, payload);
        var inline = payloadBytes <= BlockingInlineBytes;
        // Larger inline frames are the asynchronous send's; larger ones go through shared memory or not at all here.
        if (!inline && (payloadBytes <= InlinePayloadBytes || _sharedMemory is null)) return false;
        Enter(ref _sending, "TrySendNow");
        try
        {
            if (!inline && !TryWriteShared(payload)) return false;
            var frameBytes = WriteFrame(kind, step, payload, checksum, inline, shared: !inline);
            _stream.Write(_sendBuffer, 0, frameBytes);
            Sent(payloadBytes, shared: !inline);
            return true;
        }
        catch (Exception ex)
        {
            ThrowFailure(ex);
            throw;
        }
        finally
        {
            Volatile.Write(ref _sending, 0);
        }
    }

    // The largest inline frame TrySendNow writes from the calling thread: a socket's buffer holds it even if the peer reads nothing.
    private const int BlockingInlineBytes = 4 * 1024;

    private static int CheckedPayloadBytes(FrameKind kind, ReadOnlyMemory<float> payload)
    {
        if (!FrameKinds.IsData(kind))
            throw new ArgumentException($"{kind} is not a data frame kind.", nameof(kind));
        if (payload.Length > int.MaxValue / sizeof(float))
            throw new ArgumentException($"A frame carries at most {int.MaxValue / sizeof(float)} floats.", nameof(payload));
        return payload.Length * sizeof(float);
    }

    /// <summary>The frame's header (and an inline payload) in the send buffer; returns how many of its bytes to write.</summary>
    private int WriteFrame(FrameKind kind, long step, ReadOnlyMemory<float> payload, uint checksum, bool inline, bool shared)
    {
        var payloadBytes = payload.Length * sizeof(float);
        new FrameHeader(RunId, step, LocalRank, kind, payloadBytes, checksum).WriteTo(_sendBuffer, FrameHeader.ProtocolVersion, shared);
        if (inline)
            MemoryMarshal.AsBytes(payload.Span).CopyTo(_sendBuffer.AsSpan(FrameHeader.Size));
        return FrameHeader.Size + (inline ? payloadBytes : 0);
    }

    private void Sent(int payloadBytes, bool shared)
    {
        Interlocked.Add(ref _bytesSent, FrameHeader.Size + payloadBytes);
        if (shared)
            Interlocked.Add(ref _sharedMemoryBytesSent, payloadBytes);
    }

    /// <summary>Sends with a checksum the caller computed once (a broadcast sends one payload to N peers).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    internal async ValueTask SendAsync(FrameKind kind, long step, ReadOnlyMemory<float> payload, uint checksum, CancellationToken cancellationToken)
    {
        var payloadBytes = CheckedPayloadBytes(kind, payload);
        Enter(ref _sending, "SendAsync");
        try
        {
            var inline = payloadBytes <= InlinePayloadBytes;
            // Through shared memory when it fits and the peer has copied the previous one out; else TCP.
            var shared = !inline && TryWriteShared(payload);
            var frameBytes = WriteFrame(kind, step, payload, checksum, inline, shared);
            var direct = !inline && !shared;
            using var pin = direct ? payload.Pin() : default;
            try
            {
                // The writes are inline rather than in a helper method: each async helper is one more state
                // machine box per frame when the pooling builder's cache misses. A stream's write sends the
                // whole buffer (a TLS session cuts it into records).
                await _stream.WriteAsync(_sendBuffer.AsMemory(0, frameBytes), cancellationToken).ConfigureAwait(false);
                if (direct)
                    await _stream.WriteAsync(_sendWindow.Over(pin, payloadBytes), cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _sendWindow.Clear();
            }
            Sent(payloadBytes, shared);
        }
        catch (Exception ex)
        {
            ThrowFailure(ex);
            throw;
        }
        finally
        {
            Volatile.Write(ref _sending, 0);
        }
    }

    /// <summary>
    /// Receives one frame straight into <paramref name="destination"/>, whose length must equal the
    /// payload's. Checks run id, sender rank, kind, length and payload checksum; returns the header so the
    /// caller can check step and kind.
    /// </summary>
    /// <exception cref="DataPlaneException">A check failed (names the peer and field) or the peer closed.</exception>
    public ValueTask<FrameHeader> ReceiveAsync(Memory<float> destination, CancellationToken cancellationToken = default)
        => ReceiveAsync(destination, null, blocking: false, cancellationToken);

    /// <summary>
    /// <see cref="ReceiveAsync(Memory{float}, CancellationToken)"/>; with <paramref name="blocking"/> it reads on the calling thread,
    /// which waits for the frame anyway: the kernel wakes that thread when the bytes arrive, instead of a thread-pool thread that
    /// then wakes it (on cores that the workers share, each such hop can wait for a time slice). The task is then complete on return.
    /// Closing the connection (from any thread) ends a blocked read.
    /// </summary>
    internal ValueTask<FrameHeader> ReceiveAsync(Memory<float> destination, bool blocking, CancellationToken cancellationToken)
        => ReceiveAsync(destination, null, blocking, cancellationToken);

    /// <summary>
    /// Receives one frame of <paramref name="sum"/>'s length and adds it to its local vector (<see cref="ReceivedSum"/>). Through
    /// shared memory the payload is added where it lies, without a copy; over TCP it lands in <paramref name="scratch"/> (as long
    /// as the sum) first, and is added once its checksum is known to be right. The checks are
    /// <see cref="ReceiveAsync(Memory{float}, CancellationToken)"/>'s.
    /// </summary>
    public ValueTask<FrameHeader> ReceiveSumAsync(ReceivedSum sum, Memory<float> scratch, CancellationToken cancellationToken = default)
        => ReceiveSumAsync(sum, scratch, blocking: false, cancellationToken);

    /// <summary><see cref="ReceiveSumAsync(ReceivedSum, Memory{float}, CancellationToken)"/>, on the calling thread with <paramref name="blocking"/> (see <see cref="ReceiveAsync(Memory{float}, bool, CancellationToken)"/>).</summary>
    internal ValueTask<FrameHeader> ReceiveSumAsync(ReceivedSum sum, Memory<float> scratch, bool blocking, CancellationToken cancellationToken)
    {
        if (sum.Local.Length != sum.Destination.Length || scratch.Length != sum.Destination.Length)
            throw new ArgumentException($"a sum of {sum.Destination.Length} floats needs {sum.Destination.Length} local and scratch floats, " +
                                        $"not {sum.Local.Length} and {scratch.Length}", nameof(scratch));
        return ReceiveAsync(scratch, sum, blocking, cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<FrameHeader> ReceiveAsync(Memory<float> destination, ReceivedSum? sum, bool blocking, CancellationToken cancellationToken)
    {
        Enter(ref _receiving, "ReceiveAsync");
        try
        {
            // A small frame is read whole into the connection's buffer (one syscall, no pin) and copied
            // out; a large one lands directly in the destination. Either way the header is validated as
            // soon as its bytes are in, so a frame of the wrong length fails at once instead of waiting.
            var inline = destination.Length <= InlinePayloadBytes / sizeof(float);
            var destinationBytes = inline ? destination.Length * sizeof(float) : 0;
            var head = _receiveBuffer.AsMemory(0, FrameHeader.Size + destinationBytes);
            FrameHeader header = default;
            var shared = false;
            for (var done = 0; done < head.Length;)
            {
                var before = done;
                done += Received(blocking ? _stream.Read(head.Span[done..]) : await _stream.ReadAsync(head[done..], cancellationToken).ConfigureAwait(false), done > 0);
                if (before < FrameHeader.Size && done >= FrameHeader.Size)
                {
                    header = FrameHeader.ReadFrom(_receiveBuffer.AsSpan(0, FrameHeader.Size), Peer, out shared);
                    Validate(header, shared, destination.Length);
                }
            }
            uint actual = 0;
            if (shared)
            {
                // Validate admitted it only for a destination above the inline size: the socket read
                // stopped after the header, and the payload is in the peer's segment.
                actual = sum is { } into ? ReadSharedSum(header, into) : ReadShared(header, destination);
            }
            else if (inline)
            {
                var payload = _receiveBuffer.AsSpan(FrameHeader.Size, destinationBytes);
                actual = Crc32C.Compute(payload);
                payload.CopyTo(MemoryMarshal.AsBytes(destination.Span));
            }
            else
            {
                using var pin = destination.Pin();
                try
                {
                    var body = _receiveWindow.Over(pin, header.PayloadBytes);
                    for (var done = 0; done < body.Length;)
                    {
                        var n = Received(blocking ? _stream.Read(body.Span[done..]) : await _stream.ReadAsync(body[done..], cancellationToken).ConfigureAwait(false),
                            midFrame: true);
                        // Checksumming each chunk as it lands overlaps the CRC with the kernel receiving the rest.
                        actual = Crc32C.Append(actual, body.Span.Slice(done, n));
                        done += n;
                    }
                }
                finally
                {
                    _receiveWindow.Clear();
                }
            }
            if (actual != header.Checksum)
                throw new DataPlaneException(Peer, nameof(FrameHeader.Checksum),
                    $"Payload checksum mismatch from {Peer}: {header.Kind} step {header.Step}, {header.PayloadBytes} bytes, " +
                    $"CRC-32C 0x{actual:X8} but the header says 0x{header.Checksum:X8}.");
            // Over TCP the payload landed in the scratch: added only now that its checksum is known to be right.
            if (sum is { } s && !shared)
                s.Add(destination.Span, 0);
            Interlocked.Add(ref _bytesReceived, FrameHeader.Size + header.PayloadBytes);
            if (shared)
                Interlocked.Add(ref _sharedMemoryBytesReceived, header.PayloadBytes);
            return header;
        }
        catch (Exception ex)
        {
            ThrowFailure(ex);
            throw;
        }
        finally
        {
            Volatile.Write(ref _receiving, 0);
        }
    }

    /// <summary>
    /// Faults the connection (a frame broke off mid-way: the byte stream is unusable) and throws: a connection failure as a
    /// <see cref="DataPlaneException"/> naming the peer, anything else as it was.
    /// </summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void ThrowFailure(Exception ex)
    {
        Fault(ex);
        if (IsConnectionFailure(ex))
            throw new DataPlaneException(Peer, "Connection", $"Data-plane connection to {Peer} failed: {ex.Message}", ex);
        System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(ex);
    }

    private bool TryWriteShared(ReadOnlyMemory<float> payload)
        => _sharedMemory is { } channel && payload.Length * sizeof(float) <= channel.Capacity
           && channel.Outgoing.TryWrite(MemoryMarshal.AsBytes(payload.Span));

    private uint ReadShared(in FrameHeader header, Memory<float> destination)
    {
        try
        {
            return _sharedMemory!.Incoming.Read(MemoryMarshal.AsBytes(destination.Span));
        }
        catch (InvalidDataException ex)
        {
            throw new DataPlaneException(Peer, "SharedMemory", $"{header.Kind} frame from {Peer} (step {header.Step}): {ex.Message}.", ex);
        }
    }

    private uint ReadSharedSum(in FrameHeader header, ReceivedSum into)
    {
        try
        {
            return _sharedMemory!.Incoming.ReadSum(into);
        }
        catch (InvalidDataException ex)
        {
            throw new DataPlaneException(Peer, "SharedMemory", $"{header.Kind} frame from {Peer} (step {header.Step}): {ex.Message}.", ex);
        }
    }

    private void Validate(in FrameHeader header, bool inSharedMemory, int destinationFloats)
    {
        if (header.RunId != RunId)
            throw new DataPlaneException(Peer, nameof(FrameHeader.RunId), $"Frame from {Peer} belongs to run {header.RunId}, this connection to run {RunId}.");
        if (header.Rank != RemoteRank)
            throw new DataPlaneException(Peer, nameof(FrameHeader.Rank), $"Frame from {Peer} claims rank {header.Rank}.");
        if (!FrameKinds.IsData(header.Kind))
            throw new DataPlaneException(Peer, nameof(FrameHeader.Kind), $"Frame from {Peer} has kind {(ushort)header.Kind}, which is not a data frame kind.");
        if (header.PayloadBytes != (long)destinationFloats * sizeof(float))
            throw new DataPlaneException(Peer, nameof(FrameHeader.PayloadBytes),
                $"{header.Kind} frame from {Peer} (step {header.Step}) has {header.PayloadBytes} payload bytes; the destination holds {destinationFloats} floats ({destinationFloats * (long)sizeof(float)} bytes).");
        // A sender puts only payloads above the inline size, and within the segment, in shared memory.
        if (inSharedMemory && (_sharedMemory is null || header.PayloadBytes <= InlinePayloadBytes || header.PayloadBytes > _sharedMemory.Capacity))
            throw new DataPlaneException(Peer, nameof(FrameHeader.Kind), _sharedMemory is null
                ? $"{header.Kind} frame from {Peer} (step {header.Step}) is flagged as in shared memory, but this connection has none."
                : $"{header.Kind} frame from {Peer} (step {header.Step}) is flagged as in shared memory with {header.PayloadBytes} bytes, outside {InlinePayloadBytes + 1}..{_sharedMemory.Capacity}.");
    }

    private int Received(int count, bool midFrame) => count > 0
        ? count
        : throw new DataPlaneException(Peer, "Connection", midFrame
            ? $"{Peer} closed the connection in the middle of a frame."
            : $"{Peer} closed the connection.");

    private void Enter(ref int flag, string operation)
    {
        if (Volatile.Read(ref _fault) is { } fault)
            throw new InvalidOperationException($"The data-plane connection to {Peer} is faulted: {fault.Message}", fault);
        if (Interlocked.Exchange(ref flag, 1) != 0)
            throw new InvalidOperationException($"Concurrent {operation} on the data-plane connection to {Peer}: at most one at a time.");
    }

    // Socket errors reach a stream's caller as IOException; a DataPlaneException (also an IOException) is already ours.
    private static bool IsConnectionFailure(Exception ex) => ex is SocketException or ObjectDisposedException or IOException and not DataPlaneException;

    private void Fault(Exception ex)
    {
        Interlocked.CompareExchange(ref _fault, ex, null);
        // Closing the socket first ends any read or write still pending on the stream.
        _socket.Dispose();
        _stream.Dispose();
    }

    public void Dispose()
    {
        Interlocked.CompareExchange(ref _fault, new ObjectDisposedException(nameof(DataPlaneConnection)), null);
        _socket.Dispose();
        _stream.Dispose();
        // A send or receive still copying keeps its segment mapped until it is done (SharedMemorySegment).
        _sharedMemory?.Dispose();
    }
}
