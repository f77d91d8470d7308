// SlowBoot: a JVM service that boots slowly, for `ferry bench warmstart`.
//
//   java -XX:-UsePerfData -Xshare:off -cp build SlowBoot PORT ENTRIES
//
// Boot: builds an index of ENTRIES records (hashing, sorting, boxing: work a real service does
// when it loads its data and warms its JIT), then listens on 127.0.0.1:PORT. Each connection
// gets one line, "ready <entries> <checksum>", and is closed. A restored JVM answers at once
// with the checksum of the index it built before the checkpoint.
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

public final class SlowBoot {
    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: SlowBoot PORT ENTRIES");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        int entries = Integer.parseInt(args[1]);
        Map<String, long[]> index = new HashMap<>();
        List<String> keys = new ArrayList<>(entries);
        long x = 0x9E3779B97F4A7C15L;
        for (int i = 0; i < entries; i++) {
            x ^= x << 13; x ^= x >>> 7; x ^= x << 17;
            String key = Long.toHexString(x) + ":" + i;
            index.put(key, new long[] { x, i, key.hashCode() });
            keys.add(key);
        }
        Collections.sort(keys);
        long checksum = 0;
        for (String k : keys) checksum = checksum * 31 + index.get(k)[0];
        byte[] line = ("ready " + entries + " " + Long.toHexString(checksum) + "\n").getBytes(StandardCharsets.US_ASCII);
        try (ServerSocket server = new ServerSocket(port, 50, InetAddress.getLoopbackAddress())) {
            while (true) {
                try (Socket s = server.accept(); OutputStream out = s.getOutputStream()) {
                    out.write(line);
                    out.flush();
                } catch (java.io.IOException e) {
                    // A client that went away: keep serving.
                }
            }
        }
    }
}
